-- The business write alone: one INSERT in a transaction.
BEGIN;
INSERT INTO unrace_floor_business (id, amount) VALUES ('p-' || nextval('unrace_floor_ids'), 40);
COMMIT;
