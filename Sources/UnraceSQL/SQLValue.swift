/// A value bound to, or read from, a SQL statement.
///
/// The literal conformances let arguments read naturally: `[paymentID, 40, true, nil]`.
public enum SQLValue: Sendable, Hashable, ExpressibleByIntegerLiteral, ExpressibleByStringLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    /// SQL `NULL`.
    case null
    /// A 64-bit integer.
    case integer(Int64)
    /// A double-precision float.
    case real(Double)
    /// UTF-8 text.
    case text(String)
    /// Bytes (`BLOB` on SQLite, `BYTEA` on PostgreSQL).
    case blob([UInt8])
    /// A boolean (stored as 0 or 1 on SQLite).
    case bool(Bool)

    /// An integer literal.
    public init(integerLiteral value: Int64) { self = .integer(value) }
    /// A string literal.
    public init(stringLiteral value: String) { self = .text(value) }
    /// A boolean literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// `nil`, for SQL `NULL`.
    public init(nilLiteral: ()) { self = .null }
    /// A floating-point literal.
    public init(floatLiteral value: Double) { self = .real(value) }

    /// The integer value, or `nil`; booleans read as 0 and 1 (SQLite stores them so).
    public var int64: Int64? {
        switch self {
        case .integer(let value): value
        case .bool(let value): value ? 1 : 0
        default: nil
        }
    }

    /// The text value, or `nil`.
    public var string: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    /// The bytes of a blob, or `nil`.
    public var bytes: [UInt8]? {
        if case .blob(let value) = self { return value }
        return nil
    }

    /// The boolean value; integers read as `value != 0`.
    public var bool: Bool? {
        switch self {
        case .bool(let value): value
        case .integer(let value): value != 0
        default: nil
        }
    }

    /// Whether this is SQL `NULL`.
    public var isNull: Bool { self == .null }
}

extension SQLValue {
    /// Wraps any `Int`.
    public static func int(_ value: Int) -> SQLValue { .integer(Int64(value)) }
}
