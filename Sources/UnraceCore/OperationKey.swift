/// A business operation key: names one logical operation, such as `capture:pay_123`.
///
/// The key answers "has this operation already been logically completed?", so it must be
/// derived from the business request (the payment id, the order id), never from the message or
/// delivery that carried it.
///
/// A valid key follows ``NameRule/operationKey``: 1 to ``maximumByteCount`` bytes of printable
/// UTF-8, kept in Unicode normalization form C, so keys that are equal as Swift strings (`"café"`
/// composed or decomposed) name one operation on every store.
public struct OperationKey: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The largest key, in UTF-8 bytes.
    public static let maximumByteCount = 255

    /// The key's text, in NFC.
    public let rawValue: String

    /// Validates, normalizes and wraps a key.
    /// - Throws: ``UnraceError`` with code ``UnraceError/Code/invalidKey``.
    public init(_ rawValue: String) throws {
        self.rawValue = try NameRule.operationKey.validate(rawValue)
    }

    /// Decodes a key, validating it like ``init(_:)``.
    public init(from decoder: any Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }

    /// Encodes the key's text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// A short, log-safe text form.
    public var description: String { rawValue }

    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool { NameRule.refusal(scalar) == nil }
}

/// The namespace an operation key lives in: a tenant, a client, or a business area.
///
/// The same key in two scopes names two different operations. A valid scope is 1 to
/// ``maximumByteCount`` bytes of `A-Z a-z 0-9 . _ : -`, not beginning with
/// ``principalPrefix``: scopes with that prefix are the idempotency middleware's, one per client
/// (`PrincipalScope`), and no caller can name one, so no client's keys can be written or read
/// through a scope made from outside input.
public struct Scope: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The largest scope, in bytes.
    public static let maximumByteCount = 64
    /// The scope used when the caller names none.
    public static let `default` = Scope(unchecked: "default")

    /// The scope's text.
    public let rawValue: String

    /// The prefix of the idempotency middleware's per-client scopes, `p:`, which ``init(_:)``
    /// refuses.
    public static let principalPrefix = "p:"

    /// Validates and wraps a scope.
    /// - Throws: ``UnraceError`` with code ``UnraceError/Code/invalidScope`` for an empty scope,
    ///   one over ``maximumByteCount`` bytes or outside `A-Z a-z 0-9 . _ : -`, or one beginning
    ///   with ``principalPrefix``.
    public init(_ rawValue: String) throws {
        guard !rawValue.hasPrefix(Self.principalPrefix) else {
            throw UnraceError(
                .invalidScope,
                "scopes beginning with \(Self.principalPrefix) are the idempotency middleware's, one per client; no caller can name one"
            )
        }
        try self.init(stored: rawValue)
    }

    /// A scope as stored, a principal's (``principalPrefix``) included: for the stores reading
    /// their rows back and for `PrincipalScope`, never for outside input.
    /// - Throws: ``UnraceError`` with code ``UnraceError/Code/invalidScope``.
    package init(stored rawValue: String) throws {
        guard !rawValue.isEmpty, rawValue.utf8.count <= Self.maximumByteCount else {
            throw UnraceError(.invalidScope, "scope must be 1 to \(Self.maximumByteCount) bytes")
        }
        guard rawValue.utf8.allSatisfy(Self.isAllowed) else {
            throw UnraceError(.invalidScope, "scope may only contain A-Z a-z 0-9 . _ : -")
        }
        self.rawValue = rawValue
    }

    /// A scope from a string literal. Invalid literals are a programmer error and trap.
    public init(stringLiteral value: String) {
        do { try self.init(value) } catch { preconditionFailure("invalid scope literal: \(error)") }
    }

    private init(unchecked: String) { self.rawValue = unchecked }

    private enum CodingKeys: String, CodingKey { case rawValue }

    /// Decodes a scope (`{"rawValue": "…"}`), validating it like ``init(_:)``.
    /// - Throws: ``UnraceError`` with code ``UnraceError/Code/invalidScope`` for a scope
    ///   ``init(_:)`` refuses; a `DecodingError` when the value is not there.
    public init(from decoder: any Decoder) throws {
        try self.init(try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .rawValue))
    }

    /// Encodes the scope as `{"rawValue": "…"}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rawValue, forKey: .rawValue)
    }

    /// A short, log-safe text form.
    public var description: String { rawValue }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: ":"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}
