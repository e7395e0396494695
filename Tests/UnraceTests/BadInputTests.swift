import Foundation
import Testing
import Unrace
import UnracePostgres
import UnraceSQL

/// Every bad input gets a typed error with a stable code, and nothing is written.
@Suite("Bad input")
struct BadInputTests {
    static let oversizedKey = String(repeating: "k", count: OperationKey.maximumByteCount + 1)

    @Test(
        "bad keys are refused before anything runs or is stored",
        arguments: [
            ("", UnraceError.Code.invalidKey),
            (oversizedKey, .invalidKey),
            ("line\nbreak", .invalidKey),
            ("nul\u{0}byte", .invalidKey),
        ]
    )
    func badKeys(key: String, code: UnraceError.Code) async throws {
        try await withStore(.sqlite) { store, _ in try await Self.refusesKey(store, key: key, code: code) }
    }

    static func refusesKey<S: SQLStore>(_ store: S, key: String, code: UnraceError.Code) async throws {
        let table = uniqueName("effects")
        try await createEffectsTable(store, table)
        let operations = try Operations(store: store, lease: .seconds(5), retention: .seconds(5))
        let error = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: key) { tx in
                try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('x', 'w', 0)")
                return 1
            }
        }
        #expect(error?.code == code)
        let beginError = await #expect(throws: UnraceError.self) { try await operations.begin(key: key) }
        #expect(beginError?.code == code)
        #expect(try await countRows(store, table) == 0)
        let records = try await store.withTransaction { tx in try await tx.query("SELECT COUNT(*) AS n FROM unrace_operations") }
        #expect(try records[0].int64("n") == 0)
    }

    @Test("a key of exactly 255 bytes, and any printable UTF-8, is accepted")
    func boundaryKeys() throws {
        _ = try OperationKey(String(repeating: "k", count: 255))
        _ = try OperationKey("paiement:été:支付:🧾")
    }

    @Test("bad scopes", arguments: ["", "has space", String(repeating: "s", count: 65), "semi;colon"])
    func badScopes(scope: String) {
        let error = #expect(throws: UnraceError.self) { try Scope(scope) }
        #expect(error?.code == .invalidScope)
    }

    @Test("an unknown scope is refused when scopes are configured")
    func unknownScope() async throws {
        let store = MemoryStore()
        var configuration = OperationsConfiguration()
        configuration.allowedScopes = ["payments"]
        let operations = try Operations(store: store, configuration: configuration)
        let error = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "k", scope: "emails") { tx in
                tx.put("effects", id: "k", [1])
                return 1
            }
        }
        #expect(error?.code == .unknownScope)
        #expect(store.rows(in: "effects").isEmpty)
        #expect(try await store.record(scope: "emails", key: OperationKey("k")) == nil)
        _ = try await operations.perform(key: "k", scope: "payments") { _ in 1 }
        // Every call that names a scope refuses one outside the list, reads included.
        let unrestricted = try Operations(store: store)
        _ = try await unrestricted.perform(key: "k", scope: "emails") { _ in 1 }
        for call in ["peek", "begin", "status", "purgeExpired"] {
            let refused = await #expect(throws: UnraceError.self, "\(call)") {
                switch call {
                case "peek": _ = try await operations.peek(key: "k", scope: "emails")
                case "begin": _ = try await operations.begin(key: "k", scope: "emails")
                case "status": _ = try await operations.status(of: "k", scope: "emails")
                default: _ = try await operations.purgeExpired(scope: "emails")
                }
            }
            #expect(refused?.code == .unknownScope, "\(call)")
        }
        guard case .completed = try await operations.status(of: "k", scope: "payments") else {
            Issue.record("an allowed scope's status reads the record")
            return
        }
    }

    @Test("a decoded scope is validated like Scope(_:); a valid one round-trips")
    func decodedScopes() throws {
        for text in ["", "t\\u0000a", "\\u00e9", String(repeating: "s", count: 65), "a b"] {
            let json = Data(#"{"rawValue":"\#(text)"}"#.utf8)
            let error = #expect(throws: UnraceError.self, "\(text)") { try JSONDecoder().decode(Scope.self, from: json) }
            #expect(error?.code == .invalidScope, "\(text)")
        }
        let scope: Scope = "tenant-1:eu.west_2"
        #expect(try JSONDecoder().decode(Scope.self, from: JSONEncoder().encode(scope)) == scope)
        #expect(String(decoding: try JSONEncoder().encode(scope), as: UTF8.self) == #"{"rawValue":"tenant-1:eu.west_2"}"#)
    }

    @Test(
        "bad configurations are refused with stable codes",
        arguments: [
            (Duration.zero, Duration.seconds(60), UnraceError.Code.invalidLease),
            (.seconds(-5), .seconds(60), .invalidLease),
            (.seconds(86_401), .seconds(60), .invalidLease),
            (.seconds(5), .zero, .invalidConfiguration),
            (.seconds(5), .seconds(-1), .invalidConfiguration),
        ]
    )
    func badConfiguration(lease: Duration, retention: Duration, code: UnraceError.Code) {
        let error = #expect(throws: UnraceError.self) {
            try Operations(store: MemoryStore(), lease: lease, retention: retention)
        }
        #expect(error?.code == code)
    }

    @Test("bad limits and waits are refused")
    func badArguments() async throws {
        // ErrorsAndLimits: an empty ledger call returns no results and writes nothing.
        let ledger = try Ledger(store: MemoryStore())
        #expect(try await ledger.submit([]).isEmpty)
        #expect(try await ledger.createAccounts([]).isEmpty)
        let operations = try Operations(store: MemoryStore(), lease: .seconds(5), retention: .seconds(5))
        for limit in [0, -1, Operations<MemoryStore>.purgeLimitMaximum + 1] {
            let error = await #expect(throws: UnraceError.self) { try await operations.purgeExpired(limit: limit) }
            #expect(error?.code == .invalidArgument)
        }
        let error = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "k", whenInProgress: .wait(upTo: .seconds(601))) { _ in 1 }
        }
        #expect(error?.code == .invalidArgument)
        #expect(try await operations.status(of: "k") == .notStarted)
    }

    @Test(
        "malformed database URLs",
        arguments: [
            "mysql://h/db", "postgres://", "not a url", "postgres://h/db?sslmode=verify-full",
            "postgres://h/db?client_connection_check_interval=-1", "postgres://h/db?client_connection_check_interval=1s",
            "postgres://h/db?client_connection_check_interval=3600001", "postgres://h/db?client_connection_check_interval=",
            "postgres://h/db?client_connection_check_interval=99999999999999999999",
            "postgres://h/db?client_connection_check_interval",
            "postgres://h/db?client_connection_check_interval=1&client_connection_check_interval=0",
            "postgres://h/db?search_path=a&search_path=b", "postgres://h/db?sslmode", "postgres://h/db?client_connection_check_interval=١٢",
            // A port out of range or past Int is refused, never wrapped by the resolver or replaced by 5432.
            "postgres://u@h:0/db", "postgres://u@h:65536/db", "postgres://u@h:70968/db", "postgres://u@h:99999999999999999999999/db",
            // Percent-encoding that does not decode to UTF-8 is refused, never replaced by a default.
            "postgres://%FF@h/db", "postgres://u:%FF@h/db", "postgres://u@h/%FF", "postgres://u%00x@h/db", "postgres://u@h/d%00b",
        ]
    )
    func badURLs(url: String) {
        let error = #expect(throws: UnraceError.self) { try PostgresStore.clientConfiguration(url: url) }
        #expect(error?.code == .invalidDatabaseURL)
    }

    @Test("a URL's IPv6 host loses its brackets for the resolver; its search_path is folded to lower case as PostgreSQL folds it")
    func hostAndSchema() throws {
        let ipv6 = try PostgresStore.clientConfiguration(url: "postgres://u@[::1]:5433/db")
        #expect(ipv6.host == "::1" && ipv6.port == 5433)
        let named = try PostgresStore.clientConfiguration(url: "postgres://u@db.example:5433/db?search_path=Shop_1")
        #expect(named.host == "db.example")
        #expect(named.options.additionalStartupParameters.contains { $0 == ("search_path", "shop_1") })
        #expect(try PostgresStore.clientConfiguration(url: "postgres://u@h/db").port == 5432)
        #expect(
            try PostgresStore.clientConfiguration(url: "postgres://u@h:/db").port == 5432,
            "an empty port is the default, as libpq reads it"
        )
    }

    @Test("a URL's client_connection_check_interval: 1 s unless it says otherwise, and 0 sends nothing")
    func connectionCheckInterval() throws {
        func parameters(_ url: String) throws -> [String] {
            try PostgresStore.clientConfiguration(url: url).options.additionalStartupParameters.map { "\($0.0)=\($0.1)" }
        }
        #expect(try parameters("postgres://h/db") == ["client_connection_check_interval=1000"])
        #expect(
            try parameters("postgres://h/db?client_connection_check_interval=250&search_path=s1")
                == ["client_connection_check_interval=250", "search_path=s1"]
        )
        #expect(try parameters("postgres://h/db?client_connection_check_interval=0&search_path=s1") == ["search_path=s1"])
        #expect(try parameters("postgres://h/db?client_connection_check_interval=3600000") == ["client_connection_check_interval=3600000"])
    }

    @Test(
        "a text argument that holds NUL is refused on every SQL store before it is sent: nothing is stored cut short, and the step goes on",
        arguments: storeBackends.filter { $0 != .memory }
    )
    func nulInStatementText(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in
            let sql = try #require(store as? any SQLStore)
            try await Self.refusesNUL(sql)
        }
    }

    static func refusesNUL<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("effects")
        try await createEffectsTable(store, table)
        let insert = "INSERT INTO \(table) (id, worker, seq) VALUES (?, ?, ?)"
        try await store.withTransaction { tx in
            let refusals = [
                await #expect(throws: UnraceError.self) { try await tx.execute(insert, ["a\u{0}b", "w", 1]) },
                await #expect(throws: UnraceError.self) { _ = try await tx.query(insert + " RETURNING id", ["a", "w\u{0}", 2]) },
                await #expect(throws: UnraceError.self) { try await tx.executeBeforeCommit(insert, ["b", "w\u{0}", 3]) },
            ]
            #expect(refusals.map { $0?.code } == [.invalidArgument, .invalidArgument, .invalidArgument])
            #expect(refusals.map { $0?.detail } == ["argument 1", "argument 2", "argument 2"])
            // Nothing was sent: the transaction is as it was (PostgreSQL's is not aborted).
            try await tx.execute(insert, ["ok", "w", 4])
        }
        #expect(try await countRows(store, table) == 1)
        #expect(try await countRows(store, table, id: "ok") == 1)
    }

    @Test("error descriptions never carry the key")
    func logSafeDescriptions() async throws {
        let operations = try Operations(store: MemoryStore(), lease: .seconds(5), retention: .seconds(5))
        _ = try await operations.perform(key: "secret-customer-42", fingerprint: .text("a")) { _ in 1 }
        let error = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "secret-customer-42", fingerprint: .text("b")) { _ in 1 }
        }
        #expect(error.map { !"\($0)".contains("secret-customer-42") } == true)
    }
}
