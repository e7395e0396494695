import PostgresNIO
import Unrace
import UnraceCore

/// The fast path's one added statement, as a named prepared statement: each connection parses
/// and plans it once, then only binds and executes it.
struct InsertOperationIfAbsent: PostgresPreparedStatement {
    typealias Row = Int64

    static let sql = PostgresTransaction.numberPlaceholders(OperationTable.insertIfAbsentSQL)
    static let bindingDataTypes: [PostgresDataType] = [
        .text, .text, .bytea, .text, .int8, .text, .int8, .bytea, .bytea, .int8, .int8, .int8,
    ]

    /// The record's columns, in `OperationTable.values` order.
    var values: [SQLValue]

    func makeBindings() throws -> PostgresBindings { PostgresTransaction.bindings(values) }

    func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
}
