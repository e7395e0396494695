import Foundation
import Logging
public import PostgresNIO
import Unrace
import UnraceCore
public import UnraceSQL

/// Business writes inside a ``PostgresStore`` step, on one leased connection.
///
/// `?` placeholders are rewritten to PostgreSQL's `$1, $2, …` (see
/// ``numberPlaceholders(_:)`` for exactly where), so the same statement runs on SQLite and
/// PostgreSQL. Statements that already use `$n` are sent unchanged. Unrace's own hottest
/// statements run as named prepared statements.
///
/// Use it only inside the step's body: after the step, its statements are refused with
/// ``UnraceCore/UnraceError/Code/stepEnded`` (the connection may be another step's by then).
/// Await each statement before sending the next: one still in flight when the step ends closes
/// the connection, and may have run outside the step's transaction.
public struct PostgresTransaction: SQLTransaction {
    /// The connection the transaction runs on. Use it for postgres-nio features Unrace does not
    /// wrap; never let it escape the step. A statement sent on it directly does not pass the
    /// step's guard: the step timeout and a cancellation do not bound it, and postgres-nio never
    /// answers one written after the connection closed.
    public let connection: PostgresConnection
    let logger: Logger
    /// The step's hold on the connection: stopped steps send nothing more.
    package let stepGuard: ConnectionGuard

    /// Where its rows land, if a ``PostgresStore`` handed it out: that store's location.
    package let owner: String?
    /// The client its connection came from, if a ``PostgresStore`` handed it out.
    package let clientID: ObjectIdentifier?

    package init(
        connection: PostgresConnection,
        logger: Logger,
        stepGuard: ConnectionGuard? = nil,
        owner: String? = nil,
        clientID: ObjectIdentifier? = nil
    ) {
        self.owner = owner
        self.clientID = clientID
        self.connection = connection
        self.logger = logger
        self.stepGuard = stepGuard ?? ConnectionGuard(connection)
    }

    /// Runs a statement that returns no rows, in this transaction.
    public func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        try SQLValue.refuseNUL(in: arguments)
        if let statement = HotStatements.byText[sql] {
            _ = try await prepared(statement, arguments)
            return
        }
        let (connection, logger) = (connection, logger)
        try await sending {
            _ = try await connection.query(Self.query(sql, arguments), logger: logger)
        }
    }

    /// Runs a statement in this transaction and returns its rows.
    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        try SQLValue.refuseNUL(in: arguments)
        if let statement = HotStatements.byText[sql] { return try await prepared(statement, arguments) }
        return try await rows(of: Self.query(sql, arguments))
    }

    /// Runs one of Unrace's prepared statements. A server error that may have come from its
    /// preparation — any but a constraint violation or a serialization failure, which only
    /// running it raises — leaves the connection to be closed after the step: postgres-nio keeps
    /// a failed preparation (in a transaction a body's caught error aborted, past a lock
    /// timeout) and answers every later use of the statement on that connection with it.
    private func prepared(_ statement: HotStatement, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        let (connection, logger) = (connection, logger)
        do {
            return try await sending { try await HotStatements.rows(statement, connection, arguments, logger) }
        } catch let error as UnraceError {
            // Raised only by running it: a constraint, a serialization failure, a read-only server.
            if let state = error.sqlState, !state.hasPrefix("23"), !["40001", "25006"].contains(state) {
                stepGuard.discardWhenFinished()
            }
            throw error
        }
    }

    /// Runs a postgres-nio query in this transaction — its interpolations bind typed values
    /// (`"INSERT INTO orders (id, total) VALUES (\(id), \(total))"`) — and returns its rows:
    ///
    /// ```swift
    /// try await operations.perform(key: "order:\(id)") { tx in
    ///     try await tx.run("INSERT INTO orders (id, sku) VALUES (\(id), \(sku))")
    ///     return id
    /// }
    /// ```
    ///
    /// Prefer it to ``connection``'s own `query`: it is refused on a step that was stopped (its
    /// timeout, a cancellation) instead of sent on a connection being closed.
    /// - Throws: ``UnraceCore/UnraceError`` (a broken constraint is `constraint_violation`).
    @discardableResult
    public func run(_ query: PostgresQuery) async throws -> [SQLRow] {
        try await rows(of: query)
    }

    /// Sends a statement on the connection through the step's guard (see ``ConnectionGuard/send(_:)``):
    /// never on a connection already closed, and never waited on past a close the guard made.
    func sending<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await stepGuard.send { try await Self.mapErrors(work) }
    }

    /// Runs a query built with postgres-nio's own bindings (arrays, for instance) and returns its rows.
    func rows(of query: PostgresQuery) async throws -> [SQLRow] {
        let (connection, logger) = (connection, logger)
        return try await sending {
            var rows: [SQLRow] = []
            for try await row in try await connection.query(query, logger: logger) {
                rows.append(try SQLRow(row))
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

    /// Rewrites `?` placeholders to `$1, $2, …`, only where they are placeholders: not inside
    /// quoted strings (`'…'`, `E'…'` with backslash escapes), quoted identifiers, dollar-quoted
    /// strings or comments, and not in the jsonb operators `?|` and `?&`. A statement that already
    /// uses `$n` placeholders is sent unchanged (write jsonb's `?` operator in such a statement,
    /// or as `jsonb_exists(…)`). Works on UTF-8 bytes: every byte it looks at is ASCII.
    public static func numberPlaceholders(_ sql: String) -> String {
        let bytes = Array(sql.utf8)
        let question = UInt8(ascii: "?")
        guard bytes.contains(question) || bytes.contains(UInt8(ascii: "$")) else { return sql }
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count + 16)
        var number = 0
        var index = 0
        func isIdentifier(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
                || byte >= 0x80
        }
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        /// Copies up to and including the first `end` at or after `from` (or to the end).
        func copy(until end: [UInt8], from: Int) -> Int {
            var position = from
            while position < bytes.count {
                if bytes[position...].starts(with: end) { return position + end.count }
                position += 1
            }
            return bytes.count
        }
        while index < bytes.count {
            let byte = bytes[index]
            let next = index + 1 < bytes.count ? bytes[index + 1] : 0
            switch byte {
            case UInt8(ascii: "'"):
                // A string; E'…' strings escape with backslashes, others double the quote (which
                // this reads as two strings back to back).
                let escapes =
                    index > 0 && (bytes[index - 1] == UInt8(ascii: "E") || bytes[index - 1] == UInt8(ascii: "e"))
                    && (index < 2 || !isIdentifier(bytes[index - 2]))
                var end = index + 1
                while end < bytes.count, bytes[end] != UInt8(ascii: "'") {
                    end += escapes && bytes[end] == UInt8(ascii: "\\") ? 2 : 1
                }
                end = min(end + 1, bytes.count)
                result += bytes[index..<end]
                index = end
            case UInt8(ascii: "\""):
                let end = copy(until: [UInt8(ascii: "\"")], from: index + 1)
                result += bytes[index..<end]
                index = end
            case UInt8(ascii: "-") where next == UInt8(ascii: "-"):
                let end = copy(until: [UInt8(ascii: "\n")], from: index + 2)
                result += bytes[index..<end]
                index = end
            case UInt8(ascii: "/") where next == UInt8(ascii: "*"):
                var depth = 0
                var end = index
                while end < bytes.count {
                    if bytes[end...].starts(with: [UInt8(ascii: "/"), UInt8(ascii: "*")]) {
                        depth += 1
                        end += 2
                    } else if bytes[end...].starts(with: [UInt8(ascii: "*"), UInt8(ascii: "/")]) {
                        depth -= 1
                        end += 2
                        if depth == 0 { break }
                    } else {
                        end += 1
                    }
                }
                result += bytes[index..<end]
                index = end
            case UInt8(ascii: "$") where isDigit(next):
                // The statement numbers its own placeholders.
                if index == 0 || !isIdentifier(bytes[index - 1]) { return sql }
                result.append(byte)
                index += 1
            case UInt8(ascii: "$") where index == 0 || !isIdentifier(bytes[index - 1]):
                // A dollar quote: $tag$ … $tag$ (the tag may be empty).
                var tagEnd = index + 1
                while tagEnd < bytes.count, isIdentifier(bytes[tagEnd]) { tagEnd += 1 }
                guard tagEnd < bytes.count, bytes[tagEnd] == UInt8(ascii: "$") else {
                    result.append(byte)
                    index += 1
                    continue
                }
                let tag = Array(bytes[index...tagEnd])
                let end = copy(until: tag, from: tagEnd + 1)
                result += bytes[index..<end]
                index = end
            case question
            where (next == UInt8(ascii: "|") && (index + 2 >= bytes.count || bytes[index + 2] != UInt8(ascii: "|")))
                || next == UInt8(ascii: "&"):
                result += [byte, next]  // jsonb's ?| and ?&
                index += 2
            case question:
                number += 1
                result.append(UInt8(ascii: "$"))
                result.append(contentsOf: String(number).utf8)
                index += 1
            default:
                result.append(byte)
                index += 1
            }
        }
        return number == 0 ? sql : String(decoding: result, as: UTF8.self)
    }

    /// Translates postgres-nio errors into ``UnraceError``s with stable codes. The original
    /// error stays available as `underlying` (the store reads its SQLSTATE to decide on retries).
    @discardableResult
    package static func mapErrors<T>(_ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as PSQLError {
            throw translate(error)
        } catch  where String(describing: type(of: error)) == "ConnectionPoolError" {
            // The type is not public; its name is. A caller cancelled while it waited for a
            // connection is answered as every cancelled caller is.
            if Task.isCancelled || String(describing: error).contains("requestCancelled") { throw CancellationError() }
            // The pool could make no connection (its circuit breaker tripped: the server refused or
            // did not answer for a while).
            throw UnraceError(.storeUnavailable, "no PostgreSQL connection could be made", detail: "\(error)", underlying: error)
        }
    }

    static func translate(_ error: PSQLError) -> UnraceError {
        if error.code == .server {
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? ""
            let detail = "SQLSTATE \(state): \(message)"
            if state.hasPrefix("23") {
                return UnraceError(.constraintViolation, "a statement broke a database constraint", detail: detail, underlying: error)
            }
            if state == "25006" {
                // read_only_sql_transaction: a standby, or a primary being demoted.
                return UnraceError(
                    .databaseReadOnly,
                    "the database refused to write: it is a read-only standby",
                    detail: detail,
                    underlying: error
                )
            }
            if state == "57014" {
                // query_canceled: a statement timeout (the step's, on the Fluent path) or an
                // operator's cancel. Rolled back, so retryable.
                return UnraceError(
                    .storeUnavailable,
                    "PostgreSQL cancelled a statement that ran too long; nothing was committed",
                    detail: detail,
                    underlying: error
                )
            }
            // Connection exceptions (08), a server shutting down or starting (57P01–57P03), too
            // many connections (53300): retryable, nothing was written.
            if state.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300"].contains(state) {
                return UnraceError(
                    .storeUnavailable,
                    "PostgreSQL is shutting down, starting or out of connections",
                    detail: detail,
                    underlying: error
                )
            }
            return UnraceError(.storeFailure, "PostgreSQL reported an error", detail: detail, underlying: error)
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

extension SQLRow {
    init(_ row: PostgresRow) throws {
        var columns: [String] = []
        var values: [SQLValue] = []
        for cell in row {
            columns.append(cell.columnName)
            values.append(try SQLValue(cell))
        }
        self.init(columns: columns, values: values)
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
        case .numeric:
            // An exact number (PostgreSQL's SUM over BIGINT): a whole one that fits reads as an
            // integer, any other as its decimal text (which `SQLRow.int128` also reads).
            // NaN and the infinities (a binary numeric's sign word 0xC000, 0xD000, 0xF000) decode
            // as Decimal 0: read them as PostgreSQL writes them.
            if let raw = cell.bytes, raw.readableBytes >= 8, let sign = raw.getInteger(at: raw.readerIndex + 4, as: UInt16.self),
                sign >= 0xC000
            {
                self = .text(sign == 0xC000 ? "NaN" : sign == 0xD000 ? "Infinity" : "-Infinity")
                return
            }
            let text = "\(try cell.decode(Decimal.self))"
            self = Int64(text).map(SQLValue.integer) ?? .text(text)
        case .text, .varchar, .bpchar, .name, .char, .uuid, .json, .jsonb, .xml, .unknown:
            self = .text(try cell.decode(String.self))
        case .void:
            self = .null  // a function that returns nothing (pg_advisory_xact_lock)
        case let type where type.rawValue >= Self.firstUserTypeOID:
            // An enum, a citext: sent as its text. Another extension's type, or an array of a
            // database's type, sends binary: bytes that are not clean UTF-8 are refused.
            guard let raw = cell.bytes, !raw.readableBytesView.contains(0),
                let text = String(bytes: raw.readableBytesView, encoding: .utf8)
            else { throw Self.unreadable(cell, "a binary form of a database's type") }
            self = .text(text)
        default:
            // A built-in type whose binary form is not its text (a timestamp, a date, an oid, an
            // array, an interval, an address): read as text it would be garbage, silently.
            throw Self.unreadable(cell, "a type without a SQLValue")
        }
    }

    /// PostgreSQL's first OID of types a database defines (`FirstNormalObjectId`).
    static let firstUserTypeOID: UInt32 = 16_384

    static func unreadable(_ cell: PostgresCell, _ why: String) -> UnraceError {
        UnraceError(
            .invalidArgument,
            "a column cannot be read as a SQLValue (\(why)): cast it in the query, to text or bigint",
            detail: "column \(cell.columnName.terminalSafe), type oid \(cell.dataType.rawValue)"
        )
    }
}
