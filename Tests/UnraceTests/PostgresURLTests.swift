import Foundation
import Logging
import PostgresNIO
import Testing
import Unrace

@testable import UnracePostgres

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A URL's `connect_timeout`: how long a store made from it waits for a server that does not
/// answer a connection (the start's check and each pooled connection).
@Suite("PostgreSQL URL: connect_timeout", .timeLimit(.minutes(10)))
struct PostgresURLTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("connect_timeout sets the pool's and the start-up session's connect timeout; 10 s without it")
    func parsed() throws {
        #expect(PostgresStore.connectTimeout == .seconds(10))
        #expect(try PostgresStore.clientConfiguration(url: "postgres://u@h/db").options.connectTimeout == .seconds(10))
        #expect(try PostgresStore.clientConfiguration(url: "postgres://u@h/db?connect_timeout=1").options.connectTimeout == .seconds(1))
        #expect(
            try PostgresStore.clientConfiguration(url: "postgres://u@h/db?search_path=s&connect_timeout=3600").options.connectTimeout
                == .seconds(3_600)
        )
        #expect(
            try PostgresStore.connectionConfiguration(url: "postgres://u@h/db?connect_timeout=60").options.connectTimeout == .seconds(60)
        )
        #expect(try PostgresStore.connectionConfiguration(url: "postgres://u@h/db").options.connectTimeout == .seconds(10))
    }

    @Test(
        "a connect_timeout outside 1 to 3,600 whole seconds is invalid_database_url, naming the bounds",
        arguments: [
            "0", "-1", "3601", "", "1.5", "10s", "99999999999999999999", "%D9%A1%D9%A2", "+5",
        ]
    )
    func refused(value: String) {
        let error = #expect(throws: UnraceError.self) {
            try PostgresStore.clientConfiguration(url: "postgres://u@h/db?connect_timeout=\(value)")
        }
        #expect(error?.code == .invalidDatabaseURL)
        #expect(error?.message.contains("1 to 3600") == true, "\(String(describing: error))")
    }

    @Test("connect_timeout given twice or without a value is refused")
    func givenTwice() {
        for url in ["postgres://u@h/db?connect_timeout=5&connect_timeout=5", "postgres://u@h/db?connect_timeout"] {
            let error = #expect(throws: UnraceError.self) { try PostgresStore.clientConfiguration(url: url) }
            #expect(error?.code == .invalidDatabaseURL)
        }
    }

    @Test("a step's wait for a pooled connection lasts the connect timeout when that is longer than 10 s")
    func connectionWait() {
        #expect(PostgresStore.connectionWait(nil) == PostgresStore.connectionWaitMaximum)
        #expect(PostgresStore.connectionWait(.seconds(1)) == .seconds(10))
        #expect(PostgresStore.connectionWait(PostgresStore.connectTimeout) == .seconds(10), "the default URL's wait")
        #expect(PostgresStore.connectionWait(.seconds(11)) == .seconds(11))
        #expect(PostgresStore.connectionWait(.seconds(3_600)) == .seconds(3_600))
    }

    @Test(
        "a store made from a URL waits for a pooled connection as long as its connect_timeout allows; one on a client, 10 s",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func storesWait() async throws {
        try await withStore(.postgres) { onClient, location in
            #expect((onClient as? PostgresStore)?.connectionWait == .seconds(60), "the suite's URL asks for 60 s")
            // Made, not run: nothing is migrated.
            let short = try await PostgresStore(url: TestPostgres.url(location, connectTimeout: 9), logger: Self.quiet)
            #expect(short.connectionWait == .seconds(10))
            let long = try await PostgresStore(url: TestPostgres.url(location, connectTimeout: 20), logger: Self.quiet)
            #expect(long.connectionWait == .seconds(20))
            try await PostgresStore.withStore(url: TestPostgres.url(location, connectTimeout: 30), logger: Self.quiet) { store in
                #expect(store.connectionWait == .seconds(30))
            }
            let client = PostgresClient(configuration: try PostgresStore.clientConfiguration(url: location))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let store = try await PostgresStore(client: client, logger: Self.quiet)
                #expect(store.connectionWait == PostgresStore.connectionWaitMaximum, "a client's connect timeout is not known")
            }
        }
    }

    @Test(
        "a step of a store made from a URL with connect_timeout=15 waits 15 s, not 10, for a pool that lends nothing, then fails with store_unavailable",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func waitFollowsTheURL() async throws {
        try await withStore(.postgres) { _, location in
            let url = TestPostgres.url(location, connectTimeout: 15)
            try await PostgresStore.withStore(url: url, maximumConnections: 1, stepTimeout: .seconds(60), logger: Self.quiet) { store in
                let (code, waited) = try await stepBehindAHeldConnection(store, store.client)
                #expect(code == "store_unavailable")
                #expect(waited >= .milliseconds(14_500) && waited < .seconds(45), "waited \(waited): the URL's connect timeout is 15 s")
            }
        }
    }

    @Test(
        "a server whose connection queue is full fails the store's start with store_unavailable after the URL's connect_timeout, not the 10 s default",
        arguments: [1, 6]
    )
    func unansweredConnect(seconds: Int) async throws {
        try await FullBacklog.with { port in
            let started = ContinuousClock.now
            let error = await #expect(throws: UnraceError.self) {
                try await PostgresStore(url: "postgres://u@127.0.0.1:\(port)/db?connect_timeout=\(seconds)", logger: Self.quiet)
            }
            let waited = ContinuousClock.now - started
            #expect(error?.code == .storeUnavailable)
            #expect(error?.message.contains("127.0.0.1:\(port)") == true, "\(String(describing: error))")
            #expect(error?.message.contains("timed out") == true, "\(String(describing: error))")
            // At least the URL's timeout (a refused or answered connect is at once); 1 s is well
            // short of the default's 10 s, with room for a loaded machine.
            #expect(waited >= .seconds(seconds) - .milliseconds(100), "waited \(waited)")
            if seconds == 1 { #expect(waited < .seconds(9), "waited \(waited)") }
        }
    }
}

/// A loopback port whose listen queue is full and never accepted from: the kernel drops further
/// connection requests, so a connect to it neither succeeds nor is refused until its timeout (a
/// server that cannot keep up, or a host behind a firewall that drops packets).
enum FullBacklog {
    static func with<T>(_ body: (_ port: Int) async throws -> T) async throws -> T {
        let listener = try socketOrThrow()
        var clients: [Int32] = []
        defer {
            for client in clients { close(client) }
            close(listener)
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                guard bind(listener, raw, length) == 0, listen(listener, 0) == 0, getsockname(listener, raw, &length) == 0 else {
                    throw POSIXError(.init(rawValue: errno) ?? .EIO)
                }
            }
        }
        // A queue of 0 holds one finished connection; a few more make sure it is full, whatever
        // the kernel rounds it to. Non-blocking: those past the queue stay pending.
        for _ in 0..<4 {
            let client = try socketOrThrow()
            clients.append(client)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            var target = address
            _ = withUnsafePointer(to: &target) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        return try await body(Int(UInt16(bigEndian: address.sin_port)))
    }

    private static func socketOrThrow() throws -> Int32 {
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return descriptor
    }
}
