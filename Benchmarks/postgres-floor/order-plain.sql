-- The order workload of `unrace bench --workload order`: an order, its three lines in one
-- INSERT, and a conditional stock decrement, in one transaction.
\set id random(1, 9000000000000000000)
\set sku random(0, 63)
BEGIN;
INSERT INTO unrace_floor_orders (id, customer, total) VALUES ('p-' || :id, 'customer-' || (:sku * 13), 120);
INSERT INTO unrace_floor_lines (order_id, line, sku, quantity) VALUES
  ('p-' || :id, 1, 'sku-' || :sku, 1), ('p-' || :id, 2, 'sku-' || :sku, 1),
  ('p-' || :id, 3, 'sku-' || :sku, 1);
UPDATE unrace_floor_stock SET available = available - 3 WHERE sku = 'sku-' || :sku AND available >= 3;
COMMIT;
