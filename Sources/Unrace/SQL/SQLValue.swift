/// A value bound to, or read from, a SQL statement.
///
/// The literal conformances let arguments read naturally: `[paymentID, 40, true, nil]`.
public enum SQLValue: Sendable, Hashable, ExpressibleByIntegerLiteral, ExpressibleByStringLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case bool(Bool)

    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(stringLiteral value: String) { self = .text(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
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
