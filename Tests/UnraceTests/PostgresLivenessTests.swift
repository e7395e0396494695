import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceShop

/// No PostgreSQL step waits without bound: a connection lost mid-step fails the step at once
/// (postgres-nio never answers a query sent on a closed connection), a database that stops
/// answering is cut off after the step timeout, and a cancelled caller is released at once —
/// each with a typed, retryable error and nothing committed.
@Suite("PostgreSQL liveness", .timeLimit(.minutes(10)), .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)"))
struct PostgresLivenessTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A store on a fresh schema. `checksConnection: false` connects with
    /// `client_connection_check_interval=0`: the server then finishes a statement whose client
    /// went away, as it always does with a COMMIT already past its commit record (one waiting on a
    /// synchronous standby), which is what the lost-COMMIT tests need to reproduce.
    static func withPostgres(
        stepTimeout: Duration = .seconds(30),
        checksConnection: Bool = true,
        _ body: (PostgresStore) async throws -> Void
    ) async throws {
        try await withStore(.postgres) { _, location in
            try await PostgresStore.withStore(url: url(location, checksConnection), stepTimeout: stepTimeout, logger: quiet) {
                try await body($0)
            }
        }
    }

    /// As ``withPostgres(stepTimeout:checksConnection:_:)``, with a second store on the same schema
    /// whose steps have the suite's long timeout, for setting up what a short-timeout step then
    /// meets (on a loaded machine a CREATE can outlast a 1 s step).
    static func withPostgres(
        stepTimeout: Duration,
        checksConnection: Bool = true,
        _ body: (_ store: PostgresStore, _ setUp: PostgresStore) async throws -> Void
    ) async throws {
        try await withStore(.postgres) { setUp, location in
            let setUp = try #require(setUp as? PostgresStore)
            try await PostgresStore.withStore(url: url(location, checksConnection), stepTimeout: stepTimeout, logger: quiet) {
                try await body($0, setUp)
            }
        }
    }

    private static func url(_ location: String, _ checksConnection: Bool) -> String {
        checksConnection ? location : location + (location.contains("?") ? "&" : "?") + "client_connection_check_interval=0"
    }

    @Test("a connection lost mid-step fails the step with store_unavailable at once, and the next step runs")
    func lostConnection() async throws {
        try await Self.withPostgres { store in
            let operations = try Operations(store: store, configuration: .init())
            let started = ContinuousClock.now
            let outcome = try await within(.seconds(60), "a step on a lost connection") {
                do {
                    _ = try await operations.perform(key: "lost") { tx in
                        try await tx.connection.close()
                        try await tx.execute("SELECT 1")
                        return 1
                    }
                    return "performed"
                } catch let error as UnraceError {
                    return "\(error.code)\(error.isRetryable ? " retryable" : "")"
                }
            }
            #expect(outcome == "store_unavailable retryable")
            // At once: not after the store's 30 s step timeout.
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(try await store.record(scope: .default, key: OperationKey("lost")) == nil, "nothing committed")
            #expect(try await operations.perform(key: "lost") { _ in 2 }.value == 2)
        }
    }

    @Test("a step the database does not finish within the step timeout is cut off with store_unavailable")
    func stepTimeout() async throws {
        try await Self.withPostgres(stepTimeout: .seconds(1)) { store in
            let started = ContinuousClock.now
            let code = try await within(.seconds(60), "a step past its timeout") {
                do {
                    _ = try await store.withTransaction { tx in try await tx.execute("SELECT pg_sleep(60)") }
                    return "finished"
                } catch let error as UnraceError { return "\(error.code)" }
            }
            #expect(code == "store_unavailable")
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }

    @Test(
        "a statement a step's deadline cut off stops on the server too: its row lock is released within seconds, not when the statement ends"
    )
    func cutOffStatementStopsOnTheServer() async throws {
        try await Self.withPostgres(stepTimeout: .seconds(5)) { store, setUp in
            _ = try await setUp.withTransaction { tx in
                try await tx.execute("CREATE TABLE held (id integer PRIMARY KEY, n integer NOT NULL)")
                try await tx.execute("INSERT INTO held VALUES (1, 0)")
            }
            // Every connection a client configured from a URL opens carries the setting.
            let interval = try await store.withTransaction { tx in
                try await tx.query("SHOW client_connection_check_interval").first?.string("client_connection_check_interval")
            }
            #expect(interval == "1s")
            let marker = "cut_off_\(UInt64.random(in: 0...UInt64.max))"
            @Sendable func running() async throws -> Int64 {
                try await setUp.withTransaction { tx in
                    try await tx.query(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE ? AND pid <> pg_backend_pid()",
                        [.text("%\(marker)%")]
                    ).first?.int64("n") ?? 0
                }
            }
            let step = Task {
                do {
                    _ = try await store.withTransaction { tx in
                        try await tx.execute("UPDATE held SET n = n + 1 WHERE id = 1")
                        try await tx.execute("SELECT pg_sleep(120) /* \(marker) */")
                    }
                    return "finished"
                } catch let error as UnraceError { return "\(error.code)" }
            }
            // The sleep is seen running before the step's deadline cuts it off, so what follows is
            // about a statement the server was running (polled: the server's state, not ours).
            try await within(.seconds(60), "the step's sleep running on the server") {
                while try await running() == 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            let code = try await within(.seconds(60), "a step past its timeout") { try await step.value }
            #expect(code == "store_unavailable")
            // The server finds the closed connection at its next check and rolls the step back; a
            // server that looked only when it next wrote to the client would sleep on for 2 minutes
            // holding the row. A step on `setUp` would wait out its own 30 s timeout on the lock.
            let started = ContinuousClock.now
            var still: Int64 = 1
            while still > 0, ContinuousClock.now - started < .seconds(15) {
                try await Task.sleep(for: .milliseconds(50))
                still = try await running()
            }
            #expect(still == 0, "the cut-off statement still runs on the server after 15 s")
            let n = try await within(.seconds(60), "an update of the row the cut-off step locked") {
                try await setUp.withTransaction { tx in
                    try await tx.query("UPDATE held SET n = n + 1 WHERE id = 1 RETURNING n").first?.int64("n")
                }
            }
            #expect(n == 1, "the cut-off step's update was rolled back")
        }
    }

    @Test("a step timeout is kept to the millisecond: 1.999 s is 1,999 ms on the event loop (cut to whole seconds, it was 1 s)")
    func subSecondStepTimeout() {
        #expect(PostgresSteps.deadline(after: .milliseconds(1_999)) == .milliseconds(1_999))
        #expect(PostgresSteps.deadline(after: .seconds(30)) == .seconds(30))
    }

    @Test(
        "a step past its timeout between statements (its body awaiting something else) lets go of its locks at the timeout, cancelled first or not",
        arguments: [false, true]
    )
    func timedOutBetweenStatements(cancelledFirst: Bool) async throws {
        // 5 s: long enough for the step's UPDATE on a loaded machine, short beside the 60 s bounds.
        try await Self.withPostgres(stepTimeout: .seconds(5)) { store, setUp in
            _ = try await setUp.withTransaction { tx in
                try await tx.execute("CREATE TABLE held (id integer PRIMARY KEY, n integer NOT NULL)")
                try await tx.execute("INSERT INTO held VALUES (1, 0)")
            }
            let locked = Latch()
            let release = Latch()
            let step = Task {
                do {
                    try await store.withTransaction { tx in
                        try await tx.execute("UPDATE held SET n = n + 1 WHERE id = 1")
                        locked.open()
                        await release.wait()  // the body waits on something that is not the database
                    }
                    return "committed"
                } catch let error as UnraceError {
                    return "\(error.code)"
                } catch is CancellationError { return "cancelled" }
            }
            try await within(.seconds(60), "the step's update") { await locked.wait() }
            // A caller cancelled while its body waits (a shutdown's grace ran out, say): the body
            // goes on waiting; only the timeout can free the row.
            if cancelledFirst { step.cancel() }
            // The row is free once the step's 5 s are up, though its body still waits: the
            // connection was closed and the server rolled the update back.
            let n: Int64?
            do {
                n = try await within(.seconds(60), "an update of the row the timed-out step locked") {
                    try await setUp.withTransaction { tx in
                        try await tx.query("UPDATE held SET n = n + 1 WHERE id = 1 RETURNING n").first?.int64("n")
                    }
                }
            } catch {
                release.open()
                throw error
            }
            release.open()
            #expect(n == 1, "the timed-out step's update was rolled back")
            #expect(try await step.value == (cancelledFirst ? "cancelled" : "store_unavailable"))
        }
    }

    @Test(
        "a server that refuses a start-up parameter fails the store's start at once with invalid_database_url, naming client_connection_check_interval=0"
    )
    func refusedStartupParameter() async throws {
        // PostgreSQL 15 knows the setting, so the refusal is provoked with a value it rejects
        // (SQLSTATE 22023 at start-up, as an older server's 42704 or PgBouncer's refusal).
        var refused = try PostgresStore.connectionConfiguration(url: try TestPostgres.requireURL())
        refused.options.additionalStartupParameters = [("client_connection_check_interval", "-1")]
        // A generous limit: at the suite's start a session can take seconds to open (the check
        // is skipped past its limit, so the default would make this test pass or fail by load).
        let error = await #expect(throws: UnraceError.self) {
            try await PostgresStore.checkStartup(refused, within: .seconds(120), logger: Self.quiet)
        }
        #expect(error?.code == .invalidDatabaseURL)
        #expect(error?.message.contains("client_connection_check_interval=0") == true, "\(error?.message ?? "")")
        // The URL's own parameters start a session, so a store starts as before.
        try await PostgresStore.checkStartup(
            try PostgresStore.connectionConfiguration(url: try TestPostgres.requireURL()),
            within: .seconds(120),
            logger: Self.quiet
        )
    }

    @Test("a step stopped while a statement of its own was in flight never hands its connection, still open, to the next step")
    func closingConnectionIsNotReused() async throws {
        try await withStore(.postgres) { _, location in
            try await PostgresStore.withStore(url: location, maximumConnections: 1, logger: Self.quiet) { store in
                // Step A is stopped while its statement is in flight; the statement still ends
                // before the close the stop schedules (10 ms later).
                await #expect(throws: (any Error).self) {
                    try await store.withTransaction { tx in
                        try await tx.stepGuard.send {
                            tx.stepGuard.stop(.cancelled)
                            _ = try await tx.connection.query("SELECT 1", logger: Self.quiet).collect()
                        }
                    }
                }
                // Step B, on the pool's one connection, runs a statement across that 10 ms.
                let outcome = try await within(.seconds(60), "the next step") {
                    do {
                        try await store.withTransaction { tx in try await tx.execute("SELECT pg_sleep(0.1)") }
                        return "ran"
                    } catch let error as UnraceError { return "\(error.code): \(error.message)" }
                }
                #expect(outcome == "ran")
            }
        }
    }

    /// Who closes the connection under a statement in ``statementAfterTheClose(_:)``.
    enum Closer: String, CaseIterable, Sendable {
        case theGuard = "the guard"
        case theServer = "the server"
    }

    @Test(
        "a statement a close overtook on its way to the connection (the guard's own, or the server ending the session as a proxy or a failover does) is given up about 100 ms after the close, not at the step timeout or never",
        arguments: Closer.allCases
    )
    func statementAfterTheClose(_ closer: Closer) async throws {
        try await Self.withPostgres(stepTimeout: .seconds(30)) { store, setUp in
            let started = ContinuousClock.now
            let outcome = try await within(.seconds(60), "a statement written after \(closer.rawValue) closed the connection") {
                do {
                    try await store.withTransaction { tx in
                        guard case .integer(let pid)? = try await tx.query("SELECT pg_backend_pid() AS pid").first?["pid"] else {
                            throw UnraceError(.storeFailure, "no backend pid")
                        }
                        try await tx.stepGuard.send {
                            // Under load the step's task can lose the CPU between passing the guard
                            // and writing its statement: here the close comes first, always.
                            switch closer {
                            case .theGuard:
                                tx.stepGuard.stop(.timedOut)
                            case .theServer:
                                // As HAProxy cut the sessions of a node it marked down just as a
                                // step began, in the fault run; from outside the step (a step
                                // inside a step is refused).
                                _ = try await Task.detached {
                                    try await setUp.withTransaction { try await $0.query("SELECT pg_terminate_backend(\(pid))") }
                                }.value
                            }
                            try await tx.connection.closeFuture.get()
                            _ = try await tx.connection.query("SELECT 1", logger: Self.quiet).collect()
                        }
                    }
                    return "ran"
                } catch let error as UnraceError {
                    return error.code.rawValue
                } catch {
                    return "\(type(of: error))"
                }
            }
            #expect(outcome == "store_unavailable")
            // About 100 ms after the close: not at the step timeout (30 s).
            #expect(ContinuousClock.now - started < .seconds(10))
            // The pool goes on: the next step runs on a connection of its own.
            #expect(try await store.withTransaction { tx in try await tx.query("SELECT 1 AS one").first?["one"] } == .integer(1))
        }
    }

    @Test(
        "a COMMIT written after the server ended the session is outcome_unknown about 100 ms after the close, never 'nothing committed', never a wait for the step timeout"
    )
    func commitAfterTheServerClosed() async throws {
        try await withStore(.postgres) { _, location in
            let connection = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(),
                configuration: try PostgresStore.connectionConfiguration(url: location),
                id: 1,
                logger: Self.quiet
            ).get()
            defer { Task.detached { try? await connection.close() } }
            let steps = PostgresSteps(logger: Self.quiet, stepTimeout: .seconds(30))
            let tx = PostgresTransaction(connection: connection, logger: Self.quiet, stepGuard: ConnectionGuard(connection))
            try await tx.execute("BEGIN")
            guard case .integer(let pid)? = try await tx.query("SELECT pg_backend_pid() AS pid").first?["pid"] else {
                Issue.record("no backend pid")
                return
            }
            let started = ContinuousClock.now
            let code = try await within(.seconds(60), "a COMMIT written after the server closed the connection") {
                do {
                    try await steps.commit(tx) { connection, logger in
                        // COMMIT passed the guard; the server ends the session before it is written.
                        try await TestPostgres.execute("SELECT pg_terminate_backend(\(pid))")
                        try await connection.closeFuture.get()
                        return try await connection.query("COMMIT", logger: logger).get().metadata.command
                    }
                    return "committed"
                } catch let error as UnraceError {
                    return error.code.rawValue
                }
            }
            // The step cannot know that the COMMIT never reached the server: unknown, not refused.
            #expect(code == "outcome_unknown")
            #expect(ContinuousClock.now - started < .seconds(10), "not at the step timeout (30 s)")
        }
    }

    @Test(
        "a step whose session the server ends before its BEGIN is answered runs again on another connection: no error, the body runs once"
    )
    func beginAfterTheServerClosed() async throws {
        try await withStore(.postgres) { _, location in
            let configuration = try PostgresStore.connectionConfiguration(url: location)
            let steps = PostgresSteps(logger: Self.quiet, stepTimeout: .seconds(30))
            var attempts = 0
            var bodies = 0
            let started = ContinuousClock.now
            let one = try await steps.retrying {
                attempts += 1
                let connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.any(),
                    configuration: configuration,
                    id: attempts,
                    logger: Self.quiet
                ).get()
                defer { Task.detached { try? await connection.close() } }
                let pid = try await connection.query("SELECT pg_backend_pid()", logger: Self.quiet).decode(Int32.self).reduce(0) { $1 }
                // The first attempt's session is ended by the server after the step passed the
                // guard and before its BEGIN is written (HAProxy cutting a node's sessions as a
                // pooled connection is lent).
                let cut: @Sendable (PostgresConnection, Logger) async throws -> Void = { connection, logger in
                    try await TestPostgres.execute("SELECT pg_terminate_backend(\(pid))")
                    try await connection.closeFuture.get()
                    _ = try await connection.query("BEGIN", logger: logger).get()
                }
                return try await steps.transaction(on: connection, begin: attempts == 1 ? cut : nil) { tx in
                    bodies += 1
                    return try await tx.query("SELECT 1 AS one").first?["one"]
                }
            }
            #expect(one == .integer(1))
            #expect(attempts == 2)
            #expect(bodies == 1)
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }

    @Test("a statement answered after the step's close was decided fails the step with store_unavailable; the body goes no further")
    func answeredWhileClosing() async throws {
        try await Self.withPostgres { store in
            let wentOn = Latch()
            let outcome = try await within(.seconds(60), "a step whose close was decided mid-statement") {
                do {
                    _ = try await store.withTransaction { tx in
                        // Stopped while in flight, answered before the close (10 ms later) lands.
                        let answer = try await tx.stepGuard.send {
                            tx.stepGuard.stop(.timedOut)
                            return 1
                        }
                        wentOn.open()
                        return answer
                    }
                    return "ran"
                } catch let error as UnraceError {
                    return error.code.rawValue
                }
            }
            #expect(outcome == "store_unavailable")
            #expect(!wentOn.isOpen)
            // The pool goes on: the next step runs on another connection.
            #expect(try await store.withTransaction { tx in try await tx.query("SELECT 1 AS one").first?["one"] } == .integer(1))
        }
    }

    @Test(
        "a step that ends with a statement of its own still in flight (started, never awaited) closes its connection: the pool never hands it on busy"
    )
    func strayStatementClosesTheConnection() async throws {
        try await Self.withPostgres { store in
            let entered = Latch()
            let release = Latch()
            let stray = Mutex<Task<Void, any Error>?>(nil)
            let connection = try await store.withTransaction { tx in
                stray.withLock {
                    $0 = Task {
                        try await tx.stepGuard.send {
                            entered.open()
                            await release.wait()
                        }
                    }
                }
                await entered.wait()
                return tx.connection
            }
            #expect(connection.isClosed, "the step's connection went back to the pool with a statement in flight")
            release.open()
            _ = await stray.withLock { $0 }?.result
            #expect(try await store.withTransaction { tx in try await tx.query("SELECT 1 AS one").first?["one"] } == .integer(1))
        }
    }

    @Test("a cancelled caller waiting on the database is released at once with CancellationError")
    func cancelledWait() async throws {
        try await Self.withPostgres { store in
            let entered = Latch()
            let waiting = Task {
                try await store.withTransaction { tx in
                    entered.open()
                    try await tx.execute("SELECT pg_sleep(60)")
                }
            }
            await entered.wait()
            let started = ContinuousClock.now
            waiting.cancel()
            let result = try await within(.seconds(60), "the cancelled step") { await waiting.result }
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }

    /// ErrorsAndLimits: "Cancelling the task of any call rolls its step back before the call
    /// returns (`CancellationError`)" — also while the call waits for one of the pool's
    /// connections (postgres-nio fails that wait with its own `requestCancelled`).
    @Test("a cancelled caller waiting for a pooled connection gets CancellationError, not store_unavailable")
    func cancelledPoolWait() async throws {
        try await withStore(.postgres) { _, location in
            try await PostgresStore.withStore(url: location, maximumConnections: 1, logger: Self.quiet) { store in
                let entered = Latch()
                let release = Latch()
                let holder = Task {
                    try await store.withTransaction { tx in
                        try await tx.execute("SELECT 1")
                        entered.open()
                        await release.wait()
                    }
                }
                await entered.wait()
                let waiting = Task { try await store.withTransaction { tx in try await tx.execute("SELECT 1") } }
                // Time for the second caller to queue for the one connection; were it cancelled
                // before it asked, it would get CancellationError too.
                try await Task.sleep(for: .milliseconds(200))
                waiting.cancel()
                let result = try await within(.seconds(60), "the cancelled wait") { await waiting.result }
                #expect(throws: CancellationError.self) { try result.get() }
                release.open()
                try await holder.value
            }
        }
    }
}
