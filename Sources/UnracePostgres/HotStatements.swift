import Logging
import PostgresNIO
import Unrace
import UnraceSQL

/// Unrace's hottest statements, run as named prepared statements: each connection parses and
/// plans them once. ``PostgresTransaction`` looks a statement's text up here, so the shared SQL
/// of ``SQLRows`` stays the one source of every statement.
enum HotStatements {
    typealias Rows = SQLRows<PostgresTransaction>

    /// The hot statements by their shared `?` text.
    static let byText: [String: HotStatement] = Dictionary(
        uniqueKeysWithValues: [
            HotStatement(ReserveOperation.self), HotStatement(LockOperation.self), HotStatement(LockOperationNow.self),
            HotStatement(UpdateOperation.self), HotStatement(InsertOperation.self), HotStatement(LockStream.self),
            HotStatement(LockStreamNow.self), HotStatement(RecordApplied.self),
        ].map { ($0.text, $0) }
    )

    /// Each statement's `$n` text, by name, numbered once.
    static let numbered: [String: String] = Dictionary(
        uniqueKeysWithValues: byText.values.map {
            ($0.name, PostgresTransaction.numberPlaceholders($0.text))
        }
    )

    /// Runs a hot statement as a prepared statement and returns its rows.
    static func rows(
        _ statement: HotStatement,
        _ connection: PostgresConnection,
        _ arguments: [SQLValue],
        _ logger: Logger
    ) async throws -> [SQLRow] {
        try await statement.run(connection, arguments, logger)
    }

    enum ReserveOperation: HotSQL {
        static let name = "unrace_reserve_operation"
        static let text = SQLText.reserveOperationSQL
    }
    enum LockOperation: HotSQL {
        static let name = "unrace_lock_operation"
        static let text = SQLText.selectOperationSQL + " FOR UPDATE"
    }
    enum LockOperationNow: HotSQL {
        static let name = "unrace_lock_operation_now"
        static let text = Rows.withDatabaseNow(LockOperation.text)
    }
    enum UpdateOperation: HotSQL {
        static let name = "unrace_update_operation"
        static let text = SQLText.updateOperationSQL
    }
    enum InsertOperation: HotSQL {
        static let name = "unrace_insert_operation"
        static let text = SQLText.insertOperationSQL
    }
    enum LockStream: HotSQL {
        static let name = "unrace_lock_stream"
        static let text = SQLText.lockStreamSQL
    }
    enum LockStreamNow: HotSQL {
        static let name = "unrace_lock_stream_now"
        static let text = Rows.withDatabaseNow(SQLText.lockStreamSQL)
    }
    enum RecordApplied: HotSQL {
        static let name = "unrace_record_applied"
        static let text = SQLText.recordAppliedSQL
    }
}

/// One hot statement: its name, its text, and how to run it prepared.
struct HotStatement: Sendable {
    let name: String
    let text: String
    let run: @Sendable (PostgresConnection, [SQLValue], Logger) async throws -> [SQLRow]

    init<Tag: HotSQL>(_ tag: Tag.Type) {
        name = Tag.name
        text = Tag.text
        run = { connection, arguments, logger in
            var rows: [SQLRow] = []
            for try await row in try await connection.execute(
                Prepared<Tag>(bindings: PostgresTransaction.bindings(arguments)),
                logger: logger
            ) {
                rows.append(row)
            }
            return rows
        }
    }
}

/// A statement Unrace prepares: its name on the connection and its shared `?` text.
protocol HotSQL: SendableMetatype {
    static var name: String { get }
    static var text: String { get }
}

/// A hot statement as postgres-nio prepares it: by its type's name and `$n` text. Parameter types
/// are inferred from the first bindings (the statements cast where a NULL could be ambiguous).
struct Prepared<Tag: HotSQL>: PostgresPreparedStatement {
    typealias Row = SQLRow

    static var name: String { Tag.name }
    static var sql: String { HotStatements.numbered[Tag.name]! }

    let bindings: PostgresBindings

    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> SQLRow { try SQLRow(row) }
}
