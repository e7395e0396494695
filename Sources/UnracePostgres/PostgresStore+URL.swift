import Foundation
public import PostgresNIO
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

    /// Parses a `postgres://` URL into a client configuration.
    ///
    /// The URL is `postgres://user[:password]@host[:port]/database`, optionally with
    /// `sslmode=disable|require`, `search_path=schema` (letters, digits and `_`) and
    /// `client_connection_check_interval=milliseconds` (0 to send nothing; see
    /// ``clientConnectionCheckInterval``, the default). Other query items are ignored.
    /// - Throws: ``UnraceError/Code/invalidDatabaseURL`` for another scheme, no host, a bad value
    ///   of one of these three, or one of them given twice or without a value.
    public static func clientConfiguration(url: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url),
            let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql",
            let host = components.host, !host.isEmpty
        else {
            throw UnraceError(.invalidDatabaseURL, "expected postgres://user[:password]@host[:port]/database")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let items = components.queryItems ?? []
        let sslmode = try Self.value("sslmode", in: items) ?? "disable"
        let tls: PostgresClient.Configuration.TLS
        switch sslmode {
        case "disable": tls = .disable
        case "require": tls = .require(.makeClientConfiguration())
        default: throw UnraceError(.invalidDatabaseURL, "sslmode must be disable or require")
        }
        let checkInterval = try Self.checkIntervalMilliseconds(Self.value("client_connection_check_interval", in: items))
        var configuration = PostgresClient.Configuration(
            host: host,
            port: components.port ?? 5432,
            username: components.user ?? "postgres",
            password: components.password,
            database: database.isEmpty ? nil : database,
            tls: tls
        )
        if checkInterval > 0 {
            configuration.options.additionalStartupParameters.append(("client_connection_check_interval", "\(checkInterval)"))
        }
        if let schema = try Self.value("search_path", in: items) {
            guard !schema.isEmpty, schema.utf8.count <= 63,
                schema.utf8.allSatisfy({
                    $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)
                })
            else {
                throw UnraceError(.invalidDatabaseURL, "search_path must be 1 to 63 letters, digits or underscores")
            }
            configuration.options.additionalStartupParameters.append(("search_path", schema))
        }
        return configuration
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// The value of the query item `name`, if given: once, with a value.
    private static func value(_ name: String, in items: [URLQueryItem]) throws -> String? {
        let given = items.filter { $0.name == name }
        guard given.count <= 1 else { throw UnraceError(.invalidDatabaseURL, "\(name) is given more than once") }
        guard let item = given.first else { return nil }
        guard let value = item.value else { throw UnraceError(.invalidDatabaseURL, "\(name) needs a value (\(name)=…)") }
        return value
    }

    /// The URL's `client_connection_check_interval` in milliseconds, or the default's.
    private static func checkIntervalMilliseconds(_ value: String?) throws -> Int64 {
        guard let value else { return milliseconds(clientConnectionCheckInterval) }
        let maximum = milliseconds(clientConnectionCheckIntervalMaximum)
        guard !value.isEmpty, value.utf8.count <= 10, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let milliseconds = Int64(value), milliseconds <= maximum
        else {
            throw UnraceError(
                .invalidDatabaseURL,
                "client_connection_check_interval must be a whole number of milliseconds from 0 (off) to \(maximum)"
            )
        }
        return milliseconds
    }
}
