-- The same write plus the completed record Operations.perform inserts in the same transaction
-- (the statement PostgresStore's fast path sends, with values of a typical size).
BEGIN;
INSERT INTO unrace_floor_business (id, amount) VALUES ('g-' || nextval('unrace_floor_ids'), 40);
INSERT INTO unrace_floor_operations (scope, key, fingerprint, state, token, holder, lease_until, recovery_point, outcome, created_at, completed_at, expires_at)
  VALUES ('bench', 'g-' || currval('unrace_floor_ids'), '\x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20'::bytea,
          'succeeded', 1, 'host-12345-0f3c9a2e', 1700000030000, NULL, '\x3430'::bytea, 1700000000000, 1700000000000, 1700003600000)
  ON CONFLICT (scope, key) DO NOTHING RETURNING token;
COMMIT;
