-- The same write inside Operations.perform on PostgreSQL, statement for statement: the claim
-- inserted first (it holds the key, so a concurrent duplicate waits on it; the database clock is
-- read in the same statement), the body, then the completion written over the claim.
\set id random(1, 9000000000000000000)
BEGIN;
WITH unrace_t AS (SELECT COALESCE(NULL::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) AS now),
inserted AS (
  INSERT INTO unrace_floor_operations (scope, key, fingerprint, state, token, holder, lease_until, recovery_point, outcome, created_at, completed_at, expires_at)
  SELECT 'bench', 'g-' || :id, '\x'::bytea, 'running', 1, 'host-12345-0f3c9a2e', COALESCE(NULL::bigint, now + 30000), NULL, NULL, now, NULL,
         COALESCE(NULL::bigint, now + 3630000) FROM unrace_t
  ON CONFLICT (scope, key) DO NOTHING RETURNING 1)
SELECT now AS unrace_now, (SELECT COUNT(*) FROM inserted) AS inserted FROM unrace_t;
INSERT INTO unrace_floor_business (id, amount) VALUES ('g-' || :id, 40);
UPDATE unrace_floor_operations SET fingerprint = '\x'::bytea, state = 'succeeded', token = 1, holder = 'host-12345-0f3c9a2e',
  lease_until = 1700000030000, recovery_point = NULL, outcome = '\x3430'::bytea, created_at = 1700000000000,
  completed_at = 1700000000000, expires_at = 1700003600000
  WHERE scope = 'bench' AND key = 'g-' || :id;
COMMIT;
