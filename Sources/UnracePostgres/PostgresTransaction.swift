public import Unrace
import UnraceCore
public import PostgresNIO
import Logging

/// Business writes inside a ``PostgresStore`` step, on one leased connection.
///
/// `?` placeholders are rewritten to PostgreSQL's `$1, $2, …` (outside quoted text), so the same
/// statement runs on SQLite and PostgreSQL. Statements that already use `$n` are sent unchanged.
public struct PostgresTransaction: SQLTransaction {
    /// The connection the transaction runs on. Use it for postgres-nio features Unrace does not
    /// wrap; never let it escape the step.
    public let connection: PostgresConnection
    let logger: Logger

    /// Runs a statement that returns no rows, in this transaction.
    public func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        try await Self.mapErrors {
            try await connection.query(Self.query(sql, arguments), logger: logger)
        }
    }

    /// Runs a statement in this transaction and returns its rows.
    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        try await rows(of: Self.query(sql, arguments))
    }

    /// Runs a query built with postgres-nio's own bindings (arrays, for instance) and returns its rows.
    func rows(of query: PostgresQuery) async throws -> [SQLRow] {
        try await Self.mapErrors {
            var rows: [SQLRow] = []
            for try await row in try await connection.query(query, logger: logger) {
                var columns: [String] = []
                var values: [SQLValue] = []
                for cell in row {
                    columns.append(cell.columnName)
                    values.append(try SQLValue(cell))
                }
                rows.append(SQLRow(columns: columns, values: values))
            }
            return rows
        }
    }

    static func query(_ sql: String, _ arguments: [SQLValue]) -> PostgresQuery {
        PostgresQuery(unsafeSQL: numberPlaceholders(sql), binds: bindings(arguments))
    }

    static func bindings(_ arguments: [SQLValue]) -> PostgresBindings {
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument {
            case .null: binds.appendNull()
            case .integer(let value): binds.append(value)
            case .real(let value): binds.append(value)
            case .text(let value): binds.append(value)
            case .blob(let value): binds.append(ByteBuffer(bytes: value))
            case .bool(let value): binds.append(value)
            }
        }
        return binds
    }

    /// Rewrites `?` to `$1, $2, …`, leaving quoted strings and identifiers alone. Works on
    /// UTF-8 bytes: every byte it looks at is ASCII, and multi-byte characters pass through whole.
    static func numberPlaceholders(_ sql: String) -> String {
        let question = UInt8(ascii: "?")
        guard sql.utf8.contains(question) else { return sql }
        var result: [UInt8] = []
        result.reserveCapacity(sql.utf8.count + 16)
        var number = 0
        var quote: UInt8?
        for byte in sql.utf8 {
            if let open = quote {
                if byte == open { quote = nil }
                result.append(byte)
            } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
                quote = byte
                result.append(byte)
            } else if byte == question {
                number += 1
                result.append(UInt8(ascii: "$"))
                result.append(contentsOf: String(number).utf8)
            } else {
                result.append(byte)
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Translates postgres-nio errors into ``UnraceError``s with stable codes. The original
    /// error stays available as `underlying` (the store reads its SQLSTATE to decide on retries).
    @discardableResult
    static func mapErrors<T>(_ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as PSQLError {
            throw translate(error)
        }
    }

    static func translate(_ error: PSQLError) -> UnraceError {
        if error.code == .server {
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? ""
            if state.hasPrefix("23") {
                return UnraceError(.constraintViolation, "a statement broke a database constraint", detail: "SQLSTATE \(state): \(message)", underlying: error)
            }
            return UnraceError(.storeFailure, "PostgreSQL reported an error", detail: "SQLSTATE \(state): \(message)", underlying: error)
        }
        return UnraceError(.storeUnavailable, "the PostgreSQL connection failed", detail: "\(error.code)", underlying: error)
    }
}

extension UnraceError {
    /// The SQLSTATE of the PostgreSQL error behind this one, if any.
    var sqlState: String? {
        (underlying as? PSQLError)?.serverInfo?[.sqlState]
    }
}

extension SQLValue {
    init(_ cell: PostgresCell) throws {
        guard cell.bytes != nil else {
            self = .null
            return
        }
        switch cell.dataType {
        case .int8: self = .integer(try cell.decode(Int64.self))
        case .int4: self = .integer(Int64(try cell.decode(Int32.self)))
        case .int2: self = .integer(Int64(try cell.decode(Int16.self)))
        case .bool: self = .bool(try cell.decode(Bool.self))
        case .float8: self = .real(try cell.decode(Double.self))
        case .float4: self = .real(Double(try cell.decode(Float.self)))
        case .bytea:
            var buffer = try cell.decode(ByteBuffer.self)
            self = .blob(buffer.readBytes(length: buffer.readableBytes) ?? [])
        default:
            // text, varchar, name, numeric, uuid, json …: their text form.
            self = .text(try cell.decode(String.self))
        }
    }
}
