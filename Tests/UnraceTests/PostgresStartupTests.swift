import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing
import Unrace
import UnracePostgres

/// A store made from a URL the server will never accept fails its start at once, naming the
/// server's reason, instead of the pool retrying for about a minute and ending in
/// `store_unavailable` with no cause named.
///
/// `scripts/test` starts PostgreSQL without TLS and with one role, `unrace_password_check`, that
/// must sign in with a password (`scripts/lib/postgres.sh`), and says so in
/// `UNRACE_TEST_PASSWORD_ROLE`; the tests that need that server run only then (always in CI).
@Suite(
    "PostgreSQL store start",
    .timeLimit(.minutes(10)),
    .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
)
struct PostgresStartupTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Whether the server is `scripts/test`'s (or CI's, which must be).
    static let throwawayServer =
        ProcessInfo.processInfo.environment["UNRACE_TEST_PASSWORD_ROLE"] != nil || ProcessInfo.processInfo.environment["CI"] != nil

    /// The test database's URL with its user, password or database replaced, and `query` added.
    static func url(
        user: String = "postgres",
        password: String? = nil,
        database: String = "unrace_test",
        query: String? = nil
    )
        throws -> String
    {
        var components = URLComponents(string: try TestPostgres.requireURL())!
        components.user = user
        components.password = password
        components.path = "/" + database
        // The base URL's query (its connect_timeout) stays.
        let joined = [components.percentEncodedQuery, query].compactMap { $0 }.joined(separator: "&")
        components.percentEncodedQuery = joined.isEmpty ? nil : joined
        return components.string!
    }

    /// The start-up check's answer for `url`: nil when a session opened, else the error's code and
    /// message. A generous limit: at the suite's start a session can take seconds to open, and the
    /// check is skipped past its limit.
    static func check(_ url: String) async throws -> (code: UnraceError.Code, message: String)? {
        do {
            try await PostgresStore.checkStartup(PostgresStore.connectionConfiguration(url: url), within: .seconds(120), logger: quiet)
            return nil
        } catch let error as UnraceError {
            return (error.code, error.message)
        }
    }

    @Test(
        "a URL the server refuses every time fails the store's start with invalid_database_url and the server's reason",
        .enabled(if: throwawayServer, "needs scripts/test's server: a password-only role, no TLS"),
        arguments: [
            ("an unknown user", "unrace_no_such_role", nil, "unrace_test", nil, "role \"unrace_no_such_role\" does not exist"),
            ("a wrong password", "unrace_password_check", "wrong-password", "unrace_test", nil, "password authentication failed"),
            ("no password where one is needed", "unrace_password_check", nil, "unrace_test", nil, "the server refused the URL's user"),
            ("a missing database", "postgres", nil, "unrace_no_such_database", nil, "the URL's database does not exist"),
            ("sslmode=require on a server without TLS", "postgres", nil, "unrace_test", "sslmode=require", "does not accept TLS"),
            (
                "a search_path naming no schema", "postgres", nil, "unrace_test", "search_path=unrace_no_such_schema",
                "names a schema that does not exist"
            ),
        ] as [(String, String, String?, String, String?, String)]
    )
    func refusedStart(
        _ named: String,
        user: String,
        password: String?,
        database: String,
        query: String?,
        reason: String
    ) async throws {
        let answer = try await Self.check(try Self.url(user: user, password: password, database: database, query: query))
        #expect(answer?.code == .invalidDatabaseURL, "\(named): \(String(describing: answer))")
        #expect(answer?.message.contains(reason) == true, "\(named): \(answer?.message ?? "no error")")
        #expect(answer?.message.contains("wrong-password") != true, "the message never carries the password")
    }

    @Test(
        "the right password starts a store, so the refusals above are the server's answer to the URL and nothing else",
        .enabled(if: throwawayServer, "needs scripts/test's server: a password-only role")
    )
    func acceptedStart() async throws {
        // PostgreSQL 15 lets only a database's owner create tables in `public`: the store gets a
        // schema of the role's own.
        let schema = uniqueName("password_check")
        try await TestPostgres.execute("CREATE SCHEMA \(schema) AUTHORIZATION unrace_password_check")
        let url = try Self.url(user: "unrace_password_check", password: "unrace-right-password", query: "search_path=\(schema)")
        #expect(try await Self.check(url) == nil)
        try await PostgresStore.withStore(url: url, logger: Self.quiet) { store in
            let user = try await store.withTransaction { tx in
                try await tx.query("SELECT current_user AS name").first?.string("name")
            }
            #expect(user == "unrace_password_check")
        }
        try await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE")
    }

    @Test("a caller cancelled while the server stalls the store's start-up gets CancellationError at once, not a store 15 s later")
    func cancelledStart() async throws {
        // A start whose probe timed out before the start-up session opened (a machine so starved
        // that a loopback connect outlasts its timeout) never reached the stall: tried again, 3 times.
        for _ in 1...3 {
            let (stalled, outcome, afterCancel) = try await Self.cancelStalledStart()
            guard stalled else { continue }
            #expect(outcome == "cancelled")
            #expect(afterCancel < .seconds(5), "the start-up check's 15 s limit (connect timeout and 5 s) was waited out")
            return
        }
        Issue.record("the store's start ended before its start-up session three times: its probe timed out")
    }

    /// Starts a store on a server that accepts connections and never answers, and cancels it
    /// once its start-up session is open (or its start ended first: then `stalled` is false).
    static func cancelStalledStart() async throws -> (stalled: Bool, outcome: String, afterCancel: Duration) {
        try await SilentServer.with { port, accepted in
            let task = Task { try await PostgresStore(url: "postgres://unrace@127.0.0.1:\(port)/unrace", logger: Self.quiet) }
            // The start-up session's connection, or the start ending first: never a wait for a
            // connection that will not come.
            let (stalled, cancelledAt) = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    var connections = accepted.makeAsyncIterator()
                    _ = await connections.next()  // the probe
                    return await connections.next() != nil  // the start-up session, never answered
                }
                group.addTask {
                    _ = await task.result
                    return false
                }
                let stalled = await group.next() ?? false
                let cancelledAt = ContinuousClock.now
                task.cancel()
                group.cancelAll()
                return (stalled, cancelledAt)
            }
            let outcome: String
            do {
                _ = try await task.value
                outcome = "a store"
            } catch is CancellationError {
                outcome = "cancelled"
            } catch {
                outcome = "\(error)"
            }
            return (stalled, outcome, ContinuousClock.now - cancelledAt)
        }
    }

    @Test(
        "a step waiting for a pooled connection while the pool lends none for 10 s, and no step holds one, fails with store_unavailable, nothing sent; it does not wait out the pool's one-minute breaker"
    )
    func connectionWaitIsBounded() async throws {
        try await withStore(.postgres) { _, location in
            var configuration = try PostgresStore.clientConfiguration(url: location)
            configuration.options.maximumConnections = 1
            let client = PostgresClient(configuration: configuration, backgroundLogger: Self.quiet)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let store = try await PostgresStore(client: client, stepTimeout: .seconds(60), logger: Self.quiet)
                // The pool's one connection, held outside any step (as by a server away, the pool
                // cannot lend one, and no step's return is coming).
                let (code, waited) = try await stepBehindAHeldConnection(store, client)
                #expect(code == "store_unavailable")
                #expect(waited >= .seconds(9) && waited < .seconds(30), "waited \(waited): PostgresStore.connectionWaitMaximum is 10 s")
                // The connection is back: the next step runs.
                try await store.withTransaction { tx in _ = try await tx.query("SELECT 1 AS one") }
            }
        }
    }

    @Test(
        "the start-up check's search_path query on a session that never answers it is given up at the check's limit, not waited on for ever"
    )
    func unansweredSchemaCheck() async throws {
        try await SilentServer.with(answersStartUp: true) { port, _ in
            let configuration = try PostgresStore.connectionConfiguration(url: "postgres://unrace@127.0.0.1:\(port)/unrace?search_path=s")
            // The session starts (so the check reaches its query), and the query is never answered.
            let session = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(),
                configuration: configuration,
                id: 1,
                logger: Self.quiet
            ).get()
            try await session.close()
            let started = ContinuousClock.now
            try await within(.seconds(60), "the start-up check's schema query") {
                try await PostgresStore.checkStartup(configuration, within: .seconds(1), logger: Self.quiet)
            }
            let waited = ContinuousClock.now - started
            #expect(waited >= .seconds(1) && waited < .seconds(10), "waited \(waited)")
        }
    }

    @Test(
        "a store that runs its own client starts it before its first lease: postgres-nio's 'run() hasn't been called yet' warning is never logged, by withStore(url:) or by run()",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func clientRunsBeforeItsFirstLease() async throws {
        try await withStore(.postgres) { _, location in
            let recorder = LogRecorder()
            // Each start races the client's run() against the migration's lease: a few of each.
            for _ in 1...3 {
                try await PostgresStore.withStore(url: location, logger: recorder.logger) { store in
                    _ = try await store.withTransaction { try await $0.query("SELECT 1 AS one") }
                }
                let store = try await PostgresStore(url: location, logger: recorder.logger)
                let group = ServiceGroup(services: [store], logger: Self.quiet)
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await group.run() }
                    _ = try await store.withTransaction { try await $0.query("SELECT 1 AS one") }
                    await group.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                }
            }
            let early = recorder.entries.filter { $0.message.contains("hasn't been called yet") }
            // Where immediate tasks exist (see `addRunning`): Swift 6.2 and later, macOS 26 and later.
            #if compiler(>=6.2)
            if #available(macOS 26, *) {
                #expect(early.isEmpty, "\(early.count) of 6 starts leased before the client ran")
            }
            #else
            _ = early
            #endif
        }
    }

    @Test("a store made from a URL naming a missing database fails at its start, not after the pool's retries")
    func refusedStoreStart() async throws {
        let url = try Self.url(database: "unrace_no_such_database")
        let started = ContinuousClock.now
        let error = await #expect(throws: UnraceError.self) {
            try await PostgresStore.withStore(url: url, logger: Self.quiet) { _ in }
        }
        #expect(error?.code == .invalidDatabaseURL, "\(String(describing: error))")
        // A slow session bounds this (the check's own limit is the connect timeout and 5 s); the pool's retries took
        // about a minute and ended in store_unavailable.
        #expect(ContinuousClock.now - started < .seconds(45))
    }
}

/// A TCP server on loopback that accepts connections and never answers: a database whose
/// start-up stalls (or, `answersStartUp`, whose sessions start and then never answer a
/// statement). `accepted` yields once per connection.
enum SilentServer {
    /// The connections accepted so far, closed with the server.
    final class OpenChannels: Sendable {
        let list = Mutex<[any Channel]>([])
    }

    private final class Accepted: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let continuation: AsyncStream<Void>.Continuation
        let open: OpenChannels
        let answersStartUp: Bool
        var startedUp = false
        init(_ continuation: AsyncStream<Void>.Continuation, _ open: OpenChannels, answersStartUp: Bool) {
            self.continuation = continuation
            self.open = open
            self.answersStartUp = answersStartUp
        }
        func channelActive(context: ChannelHandlerContext) {
            let channel = context.channel
            open.list.withLock { $0.append(channel) }
            continuation.yield()
            context.fireChannelActive()
        }
        /// An SSLRequest's answer (no TLS), then the start-up message's, once: AuthenticationOk,
        /// BackendKeyData and ReadyForQuery (idle). Nothing after.
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard answersStartUp, !startedUp else { return }
            let message = unwrapInboundIn(data)
            var answer = context.channel.allocator.buffer(capacity: 27)
            if message.readableBytes == 8, message.getInteger(at: message.readerIndex + 4, as: UInt32.self) == 80_877_103 {
                answer.writeBytes([UInt8(ascii: "N")])
            } else {
                startedUp = true
                answer.writeBytes([UInt8(ascii: "R"), 0, 0, 0, 8, 0, 0, 0, 0])
                answer.writeBytes([UInt8(ascii: "K"), 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2])
                answer.writeBytes([UInt8(ascii: "Z"), 0, 0, 0, 5, UInt8(ascii: "I")])
            }
            context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
        }
    }

    static func with<T>(
        answersStartUp: Bool = false,
        _ body: (_ port: Int, _ accepted: AsyncStream<Void>) async throws -> T
    ) async throws -> T {
        let (accepted, continuation) = AsyncStream<Void>.makeStream()
        let open = OpenChannels()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Accepted(continuation, open, answersStartUp: answersStartUp))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        func closeAll() async {
            try? await channel.close()
            for connection in open.list.withLock({ $0 }) { try? await connection.close() }
        }
        do {
            let result = try await body(try #require(channel.localAddress?.port), accepted)
            await closeAll()
            return result
        } catch {
            await closeAll()
            throw error
        }
    }
}
