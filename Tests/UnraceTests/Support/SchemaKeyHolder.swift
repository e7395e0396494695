import Unrace
import UnraceSQL

/// Another replica migrating `schema`, on PostgreSQL: holds the schema's migration key (the
/// per-schema advisory lock every migration of it takes) in a transaction of `store` until
/// ``release()``, so that a store started meanwhile waits in its migration.
final class SchemaKeyHolder: Sendable {
    let store: any SQLStore
    let schema: String
    private let released = Latch()
    private let transaction: Task<Void, any Error>

    init(_ store: any SQLStore, schema: String) async {
        let held = Latch()
        let released = released
        self.store = store
        self.schema = schema
        transaction = Task {
            defer { held.open() }  // also when the transaction failed to start
            try await store.withTransaction { tx in
                try await tx.execute("SELECT pg_advisory_xact_lock(7220001, hashtext('\(schema)'))")
                held.open()
                await released.wait()
            }
        }
        await held.wait()
    }

    /// Waits, at most 30 s, until `count` sessions wait for the key.
    func waitForWaiters(_ count: Int) async throws {
        let (store, schema) = (store, schema)
        try await within(.seconds(60), "\(count) sessions waiting on \(schema)'s migration key") {
            while try await store.withTransaction({ tx in
                try await tx.query(
                    """
                    SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 7220001
                    AND objid::int8 = (hashtext('\(schema)')::int8 & 4294967295) AND objsubid = 2 AND NOT granted
                    """
                )
            }).first?["n"].int64 ?? 0 < Int64(count) {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Lets the key go, and waits for the transaction that held it to end.
    func release() async throws {
        released.open()
        try await transaction.value
    }
}
