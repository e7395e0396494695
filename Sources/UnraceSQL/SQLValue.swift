import UnraceCore

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
    /// UTF-8 text without NUL: every SQL store refuses a text argument that holds one (SQLite
    /// would cut it short there, PostgreSQL refuses it); bind such bytes as ``blob(_:)``.
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

extension SQLValue {
    /// Refuses a statement's arguments when a text argument holds a NUL: SQLite binds text up to
    /// its first NUL (the rest would be lost without an error), PostgreSQL refuses NUL in text,
    /// and a Fluent SQLite connection stores it whole but reads it back cut. Checked before the
    /// statement is sent, so nothing of it is written.
    /// - Throws: ``UnraceCore/UnraceError/Code/invalidArgument``, naming the argument's position.
    package static func refuseNUL(in arguments: [SQLValue]) throws {
        for (index, argument) in arguments.enumerated() {
            guard case .text(let text) = argument, text.utf8.contains(0) else { continue }
            throw UnraceError(
                .invalidArgument,
                "a text argument holds a NUL character, which SQL text cannot keep; bind such bytes as .blob",
                detail: "argument \(index + 1)"
            )
        }
    }
}
