import Foundation
package import Logging
import NIOCore
import NIOPosix
public import PostgresNIO
import Unrace
import UnraceCore

extension PostgresStore {
    /// How often the server looks for a closed connection while it runs a statement, by default:
    /// 1 second.
    ///
    /// A step cut off at its ``stepTimeout`` (or cancelled) has its connection closed, but a server
    /// would otherwise notice only when it next writes to the client: a statement stuck in a long
    /// sleep, scan or lock wait would run on, holding the step's row locks, until it finished. Every
    /// connection of a client configured by ``clientConfiguration(url:)`` sets PostgreSQL's
    /// `client_connection_check_interval` to this at start-up, so the server rolls such a step back
    /// within about a second.
    ///
    /// A server that does not know the setting refuses the connection: PostgreSQL 13 or older,
    /// PostgreSQL 14 outside Linux, one on Windows, or a pooler that refuses start-up
    /// parameters it does not know (PgBouncer, unless the setting is in its
    /// `ignore_startup_parameters`). Add `client_connection_check_interval=0` to the URL to send
    /// nothing, or another number of milliseconds (up to ``clientConnectionCheckIntervalMaximum``)
    /// to change it. For a client you configure yourself, set it in the configuration's
    /// `options.additionalStartupParameters`.
    public static var clientConnectionCheckInterval: Duration { .seconds(1) }

    /// The longest `client_connection_check_interval` a URL may ask for: 1 hour.
    public static var clientConnectionCheckIntervalMaximum: Duration { .seconds(3_600) }

    /// How long opening one connection may take, by default: 10 seconds (postgres-nio's default).
    ///
    /// It bounds the check a store made from a URL makes before it starts (an unreachable server
    /// fails the start with `store_unavailable` within it, naming where) and each connection the
    /// pool opens. A URL's `connect_timeout=seconds` (libpq's name and unit) changes it, from 1 to
    /// ``connectTimeoutMaximum``; libpq's `0` (wait for ever) is refused, since every wait Unrace
    /// makes is bounded. Raise it for a server reached over a slow link, or for a machine so loaded
    /// that a loopback connection can take longer.
    public static var connectTimeout: Duration { .seconds(10) }

    /// The longest `connect_timeout` a URL may ask for: 1 hour.
    public static var connectTimeoutMaximum: Duration { .seconds(3_600) }

    /// Parses a `postgres://` URL into a client configuration.
    ///
    /// The URL is `postgres://user[:password]@host[:port]/database`, optionally with
    /// `sslmode=disable|require` (`require` verifies the server's certificate and host name
    /// against the system's trusted roots, as libpq's `verify-full` does, not only encrypts),
    /// `search_path=schema` (letters, digits and `_`),
    /// `client_connection_check_interval=milliseconds` (0 to send nothing; see
    /// ``clientConnectionCheckInterval``, the default) and `connect_timeout=seconds` (see
    /// ``connectTimeout``, the default). Other query items are ignored.
    /// - Throws: ``UnraceError/Code/invalidDatabaseURL`` for another scheme, no host, a bad value
    ///   of one of these four, or one of them given twice or without a value.
    public static func clientConfiguration(url: String) throws -> PostgresClient.Configuration {
        try ParsedURL(url).clientConfiguration
    }

    /// What a store made from `url` starts with, from one parse of it: the pool's configuration
    /// and where its rows land, once the server was probed and one session opened
    /// (``checkStartup(_:within:logger:)``).
    static func prepare(
        url: String,
        maximumConnections: Int,
        logger: Logger
    ) async throws -> (PostgresClient.Configuration, location: String) {
        let parsed = try ParsedURL(url)
        guard (1...500).contains(maximumConnections) else {
            throw UnraceError(.invalidConfiguration, "maximumConnections must be between 1 and 500")
        }
        var configuration = parsed.clientConfiguration
        configuration.options.maximumConnections = maximumConnections
        try await probe(host: parsed.host, port: parsed.port, timeout: TimeAmount(parsed.connectTimeout))
        // The session's answer may take a while after the connection opened (a loaded server).
        try await checkStartup(parsed.connectionConfiguration(), within: parsed.connectTimeout + .seconds(5), logger: logger)
        return (configuration, parsed.location)
    }

    /// Opens (and closes) one TCP connection to the server, so an unreachable database fails
    /// within `timeout`, naming where and why, instead of after the pool's retries.
    /// - Throws: ``UnraceError/Code/storeUnavailable``; `CancellationError` at once when the caller
    ///   is cancelled.
    static func probe(host: String, port: Int, timeout: TimeAmount) async throws {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(timeout)
        let attempt = Task { try await bootstrap.connect(host: host, port: port).get() }
        // The connect timeout bounds the attempt; a cancelled caller does not wait for it.
        let limit = Duration.nanoseconds(timeout.nanoseconds) + .seconds(1)
        guard let result = await TaskRace.first(of: attempt, within: limit, orCancellation: true) else {
            Task.detached { try? await attempt.value.close() }
            try Task.checkCancellation()
            throw UnraceError(.storeUnavailable, "cannot reach PostgreSQL at \(host):\(port): the connection timed out")
        }
        do {
            let channel = try result.get()
            try? await channel.close()
        } catch {
            throw UnraceError(
                .storeUnavailable,
                "cannot reach PostgreSQL at \(host):\(port): \(Self.cause(of: error))",
                underlying: error
            )
        }
    }

    private static func cause(of error: any Error) -> String {
        if let error = error as? IOError { return error.description }
        if error is ChannelError { return "connection timed out or refused (\(error))" }
        return String(describing: error)
    }

    /// One connection's configuration for `url`: what ``clientConfiguration(url:)`` gives the
    /// pool, for the start-up check.
    package static func connectionConfiguration(url: String) throws -> PostgresConnection.Configuration {
        try ParsedURL(url).connectionConfiguration()
    }

    /// Opens one session with `configuration` and closes it, so that a start-up the server will
    /// refuse every time fails at once, naming the cause, instead of every pooled connection
    /// failing for about a minute and the store ending in `store_unavailable` with no cause named.
    ///
    /// Refusals that retrying cannot mend throw: a start-up parameter the server (or a pooler)
    /// refused, the URL's user or password refused (SQLSTATE class 28, which includes a missing
    /// `pg_hba.conf` entry; a password asked for and not in the URL; a sign-in method postgres-nio
    /// does not support), a database that does not exist (3D000), `sslmode=require` on a server
    /// without TLS, and a `search_path` naming no schema the user can use. Any other failure (the
    /// server starting up or shutting down, too many connections) is left to the pool, which
    /// retries and reports it as before; an answer slower than `limit` is not waited for (the
    /// check is then skipped).
    /// - Throws: ``UnraceError/Code/invalidDatabaseURL`` for such a refusal, with the server's
    ///   message (never the password); `CancellationError` at once when the caller is cancelled.
    package static func checkStartup(
        _ configuration: PostgresConnection.Configuration,
        within limit: Duration = .seconds(10),
        logger: Logger
    ) async throws {
        let attempt = Task {
            try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(),
                configuration: configuration,
                id: 0,
                logger: logger
            ).get()
        }
        guard let result = await TaskRace.first(of: attempt, within: limit, orCancellation: true) else {
            attempt.cancel()
            Task.detached { try? await attempt.value.close() }
            try Task.checkCancellation()
            return
        }
        switch result {
        case .success(let connection):
            defer { Task.detached { try? await connection.close() } }
            // A search_path naming no schema leaves current_schema() NULL: Unrace's tables would
            // have nowhere to go, and the migration would fail later with a less helpful error.
            guard configuration.options.additionalStartupParameters.contains(where: { $0.0 == "search_path" }) else { return }
            // Bounded as the connect is: a session the server (or a proxy) ends before the query
            // is written would never be answered (postgres-nio 1.33), nor would a stalled server.
            let check = Task {
                let answers = try await connection.query("SELECT current_schema() IS NULL", logger: logger)
                return try await answers.decode(Bool.self).reduce(false) { $0 || $1 }
            }
            guard case .success(let missing)? = await TaskRace.first(of: check, within: limit, orCancellation: true) else {
                check.cancel()
                try Task.checkCancellation()
                return  // not a refusal of the URL's: left to the pool, as above
            }
            if missing {
                throw UnraceError(
                    .invalidDatabaseURL,
                    "the URL's search_path names a schema that does not exist, or that the URL's user may not use; create it (or grant USAGE on it) first"
                )
            }
        case .failure(let error as PSQLError):
            if let refusal = startupRefusal(error) { throw refusal }
        case .failure:
            return
        }
    }

    /// The typed error for a start-up refusal that retrying cannot mend, or `nil`.
    private static func startupRefusal(_ error: PSQLError) -> UnraceError? {
        if error.code == .sslUnsupported {
            return UnraceError(
                .invalidDatabaseURL,
                "the server does not accept TLS, which the URL's sslmode=require asks for",
                underlying: error
            )
        }
        if error.code == .authMechanismRequiresPassword {
            return UnraceError(
                .invalidDatabaseURL,
                "the server refused the URL's user: it asks for a password and the URL has none",
                underlying: error
            )
        }
        if error.code == .unsupportedAuthMechanism {
            return UnraceError(
                .invalidDatabaseURL,
                "the server asks the URL's user to sign in with a method postgres-nio does not support (use a password: md5 or scram-sha-256)",
                underlying: error
            )
        }
        let message = error.serverInfo?[.message] ?? ""
        let state = error.serverInfo?[.sqlState] ?? ""
        if message.contains("client_connection_check_interval") {
            return UnraceError(
                .invalidDatabaseURL,
                "the server refused a start-up parameter (\(message)); for PostgreSQL 13 or older, 14 outside Linux, Windows, or a pooler such as PgBouncer, add client_connection_check_interval=0 to the URL",
                underlying: error
            )
        }
        if state.hasPrefix("28") {
            return UnraceError(.invalidDatabaseURL, "the server refused the URL's user (\(message))", underlying: error)
        }
        if state == "3D000" {
            return UnraceError(.invalidDatabaseURL, "the URL's database does not exist (\(message))", underlying: error)
        }
        // A pooler refusing another parameter of the URL's (PgBouncer and search_path): named
        // as the server named it, without a hint that would not help.
        if message.contains("unsupported startup parameter") {
            return UnraceError(.invalidDatabaseURL, "the server refused a start-up parameter (\(message))", underlying: error)
        }
        return nil
    }
}

/// A `postgres://` URL's parts, parsed once for everything a store made from it needs.
struct ParsedURL {
    var host: String
    var port: Int
    var username: String
    var password: String?
    var database: String?
    var requiresTLS: Bool
    var startupParameters: [(String, String)] = []
    /// How long opening one connection may take (``PostgresStore/connectTimeout``).
    var connectTimeout: Duration

    init(_ url: String) throws {
        guard let components = URLComponents(string: url),
            let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql",
            let host = components.host, !host.isEmpty
        else {
            throw UnraceError(.invalidDatabaseURL, "expected postgres://user[:password]@host[:port]/database")
        }
        // Parts whose percent-encoding does not decode to UTF-8 come back as nil or empty: refused,
        // never replaced by a default (another user, the user's database).
        guard components.percentEncodedUser == nil || components.user != nil,
            components.percentEncodedPassword == nil || components.password != nil,
            components.percentEncodedPath.isEmpty || components.percentEncodedPath == "/" || !components.path.isEmpty
        else {
            throw UnraceError(.invalidDatabaseURL, "the URL's user, password or database is not valid percent-encoded UTF-8")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        for part in [components.user, components.password, database] where part?.utf8.contains(0) == true {
            throw UnraceError(.invalidDatabaseURL, "the URL's user, password and database may not contain NUL")
        }
        // A port that does not parse as a number comes back nil: refused, never the default.
        if let range = components.rangeOfPort, !range.isEmpty {
            guard let port = components.port, (1...65_535).contains(port) else {
                throw UnraceError(.invalidDatabaseURL, "the URL's port must be 1 to 65535")
            }
        }
        let items = components.queryItems ?? []
        switch try Self.value("sslmode", in: items) ?? "disable" {
        case "disable": requiresTLS = false
        case "require": requiresTLS = true
        default: throw UnraceError(.invalidDatabaseURL, "sslmode must be disable or require")
        }
        // An IPv6 literal keeps its brackets in URLComponents.host; the resolver wants it bare.
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port ?? 5432
        self.username = components.user ?? "postgres"
        self.password = components.password
        self.database = database.isEmpty ? nil : database
        connectTimeout = try Self.connectTimeout(Self.value("connect_timeout", in: items))
        let checkInterval = try Self.checkIntervalMilliseconds(Self.value("client_connection_check_interval", in: items))
        if checkInterval > 0 { startupParameters.append(("client_connection_check_interval", "\(checkInterval)")) }
        if let schema = try Self.value("search_path", in: items) {
            guard !schema.isEmpty, schema.utf8.count <= 63,
                schema.utf8.allSatisfy({
                    $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)
                })
            else {
                throw UnraceError(.invalidDatabaseURL, "search_path must be 1 to 63 letters, digits or underscores")
            }
            // PostgreSQL folds an unquoted name to lower case: `Shop` and `shop` are one schema.
            startupParameters.append(("search_path", schema.lowercased()))
        }
    }

    /// The pool's configuration (``PostgresStore/clientConfiguration(url:)``).
    var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host,
            port: port,
            username: username,
            password: password,
            database: database,
            tls: requiresTLS ? .require(.makeClientConfiguration()) : .disable
        )
        configuration.options.additionalStartupParameters = startupParameters
        configuration.options.connectTimeout = connectTimeout
        return configuration
    }

    /// One connection's configuration, as the pool's (postgres-nio's two configuration types have
    /// no conversion between them), for the start-up check.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration = PostgresConnection.Configuration(
            host: host,
            port: port,
            username: username,
            password: password,
            database: database,
            tls: requiresTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
        )
        configuration.options.additionalStartupParameters = startupParameters
        configuration.options.connectTimeout = TimeAmount(connectTimeout)
        return configuration
    }

    /// Where a store made from the URL puts its rows: the user (the default `search_path` names
    /// it), host, port, database and `search_path`.
    var location: String {
        let searchPath = startupParameters.first { $0.0 == "search_path" }?.1 ?? ""
        return "url \(username)@\(host.lowercased()):\(port)/\(database ?? username)?search_path=\(searchPath)"
    }

    /// The value of the query item `name`, if given: once, with a value.
    private static func value(_ name: String, in items: [URLQueryItem]) throws -> String? {
        let given = items.filter { $0.name == name }
        guard given.count <= 1 else { throw UnraceError(.invalidDatabaseURL, "\(name) is given more than once") }
        guard let item = given.first else { return nil }
        guard let value = item.value else { throw UnraceError(.invalidDatabaseURL, "\(name) needs a value (\(name)=…)") }
        return value
    }

    /// The URL's `connect_timeout` (whole seconds), or the default.
    private static func connectTimeout(_ value: String?) throws -> Duration {
        guard let value else { return PostgresStore.connectTimeout }
        let maximum = PostgresStore.connectTimeoutMaximum.wholeMilliseconds / 1_000
        guard let seconds = wholeNumber(value, in: 1...maximum) else {
            throw UnraceError(.invalidDatabaseURL, "connect_timeout must be a whole number of seconds from 1 to \(maximum)")
        }
        return .seconds(seconds)
    }

    /// `value` as a number in `range`, written in ASCII digits only (no sign, no other script's
    /// digits) and at most 10 of them; `nil` otherwise.
    private static func wholeNumber(_ value: String, in range: ClosedRange<Int64>) -> Int64? {
        guard !value.isEmpty, value.utf8.count <= 10, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let number = Int64(value), range.contains(number)
        else { return nil }
        return number
    }

    /// The URL's `client_connection_check_interval` in milliseconds, or the default's.
    private static func checkIntervalMilliseconds(_ value: String?) throws -> Int64 {
        guard let value else { return PostgresStore.clientConnectionCheckInterval.wholeMilliseconds }
        let maximum = PostgresStore.clientConnectionCheckIntervalMaximum.wholeMilliseconds
        guard let milliseconds = wholeNumber(value, in: 0...maximum) else {
            throw UnraceError(
                .invalidDatabaseURL,
                "client_connection_check_interval must be a whole number of milliseconds from 0 (off) to \(maximum)"
            )
        }
        return milliseconds
    }
}

extension PostgresStore: RowsIdentifying {
    /// Its ``location``, the same that decides whose transactions it joins.
    package var rowsIdentity: String { "postgres \(location)" }
}
