import Logging
import PostgresNIO
import Unrace
import UnracePostgres
import UnraceSQL

/// The PostgreSQL backend (server process) running `tx`: what ``waitUntilBlocked(by:on:_:)`` watches.
func backendPID(_ tx: some SQLTransaction) async throws -> Int64 {
    try await tx.query("SELECT pg_backend_pid() AS pid", [])[0].int64("pid")
}

/// Waits, at most 60 s, until another session waits on a lock that PostgreSQL backend `pid`
/// holds: a state the test observes, polled every 20 ms.
func waitUntilBlocked<S: SQLStore>(by pid: Int64, on store: S, _ what: String) async throws {
    try await within(.seconds(60), what) {
        while try await store.withTransaction({ tx in
            try await tx.query("SELECT count(*) AS n FROM pg_stat_activity WHERE \(pid) = ANY(pg_blocking_pids(pid))", [])
        }).first?["n"].int64 ?? 0 < 1 {
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// The database's clock now, in milliseconds since 1970.
func databaseNow<S: SQLStore>(_ store: S) async throws -> Int64 {
    try await store.withTransaction { tx in try await tx.query("SELECT \(SQLText.databaseNowSQL) AS now", [])[0].int64("now") }
}

/// Holds one connection of `client` outside any step while a step of `store` (on that client)
/// waits for one: the pool lends none and no step's return is coming. Returns the step's error
/// code (`nil`: it ran) and how long it waited; the connection goes back after.
func stepBehindAHeldConnection(_ store: PostgresStore, _ client: PostgresClient) async throws -> (code: String?, waited: Duration) {
    let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let holding = Latch()
    let done = Latch()
    let holder = Task {
        defer { holding.open() }  // also when the hold failed
        try await client.withConnection { connection in
            _ = try await connection.query("SELECT 1", logger: quiet)
            holding.open()
            await done.wait()
        }
    }
    await holding.wait()
    let started = ContinuousClock.now
    let code = await QueueTests.code { try await store.withTransaction { tx in _ = try await tx.query("SELECT 1 AS one") } }
    let waited = ContinuousClock.now - started
    done.open()
    try await holder.value
    return (code, waited)
}
