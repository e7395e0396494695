import UnraceCore

/// One row a query returned, by column name.
public struct SQLRow: Sendable, Hashable {
    /// The column names, in order.
    public let columns: [String]
    /// The values, in column order.
    public let values: [SQLValue]

    /// Creates a row.
    /// - Precondition: `values` has one value per column (a programming error otherwise: it traps).
    public init(columns: [String], values: [SQLValue]) {
        precondition(columns.count == values.count, "a row needs one value per column")
        self.columns = columns
        self.values = values
    }

    /// The value of a column, or `.null` if there is no such column.
    public subscript(column: String) -> SQLValue {
        guard let index = columns.firstIndex(of: column) else { return .null }
        return values[index]
    }

    /// The value of a column, or `.null` past the end.
    public subscript(index: Int) -> SQLValue {
        values.indices.contains(index) ? values[index] : .null
    }

    /// A non-null integer column.
    /// - Throws: `UnraceError.Code.storeFailure` if it is missing or not an integer.
    public func int64(_ column: String) throws -> Int64 {
        guard let value = self[column].int64 else { throw Self.typeError(column, "integer") }
        return value
    }

    /// A non-null integer column as 128 bits; also reads the decimal text of an exact numeric
    /// (PostgreSQL's `SUM` over `BIGINT` is `numeric`).
    public func int128(_ column: String) throws -> Int128 {
        switch self[column] {
        case .integer(let value): return Int128(value)
        case .text(let text): if let value = Int128(text) { return value }
        default: break
        }
        throw Self.typeError(column, "integer")
    }

    /// A non-null text column.
    public func string(_ column: String) throws -> String {
        guard let value = self[column].string else { throw Self.typeError(column, "text") }
        return value
    }

    /// A blob column that may be null.
    public func optionalBytes(_ column: String) -> [UInt8]? { self[column].bytes }

    /// An integer column that may be null.
    public func optionalInt64(_ column: String) -> Int64? { self[column].int64 }

    private static func typeError(_ column: String, _ type: String) -> UnraceError {
        UnraceError(.storeFailure, "a stored column did not have the expected type", detail: "column \(column) is not \(type)")
    }
}
