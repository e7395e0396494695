-- The business write alone: one INSERT in a transaction.
\set id random(1, 9000000000000000000)
BEGIN;
INSERT INTO unrace_floor_business (id, amount) VALUES ('p-' || :id, 40);
COMMIT;
