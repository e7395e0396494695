import UnraceCore

/// The value of an `Idempotency-Key` request header.
///
/// draft-ietf-httpapi-idempotency-key-header makes the header an RFC 8941 *sf-string*:
/// `Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"`. Many clients (Stripe's among them)
/// send the bare value without quotes, so by default a bare value is accepted too when it is
/// one run of visible ASCII without `"`, `\`, `,` or `;`, which cannot be mistaken for a quoted
/// string, a list or parameters. ``Syntax/strict`` accepts only the sf-string.
///
/// Either way the key is 1 to ``maximumByteCount`` bytes of visible ASCII or spaces (what an
/// sf-string can carry), and it becomes an ``OperationKey``; the header is refused, never
/// truncated, when it is longer, repeated (two header lines fold into a list), or malformed.
public struct IdempotencyKey: Sendable, Hashable, CustomStringConvertible {
    /// The longest key accepted, in bytes: ``OperationKey/maximumByteCount``.
    public static var maximumByteCount: Int { OperationKey.maximumByteCount }

    /// Which spellings of the header are accepted.
    public struct Syntax: Sendable, Hashable {
        let allowsBareValue: Bool
        /// Only the draft's sf-string: `"…"`, with `\"` and `\\` escapes.
        public static let strict = Syntax(allowsBareValue: false)
        /// The sf-string, or a bare value of visible ASCII without `"` `\` `,` `;` (the default).
        public static let lenient = Syntax(allowsBareValue: true)
    }

    /// The key's text, unquoted and unescaped.
    public let value: String

    /// Parses a header value.
    /// - Throws: ``HTTPProblem`` with code ``HTTPProblem/Code/idempotencyKeyInvalid``.
    public init(parsing header: String, syntax: Syntax = .lenient) throws {
        let bytes = Array(header.utf8)
        let trimmed = bytes.drop { $0 == 0x20 }.reversed().drop { $0 == 0x20 }.reversed()
        let text: [UInt8]
        if trimmed.first == UInt8(ascii: "\"") {
            text = try Self.parseString(Array(trimmed))
        } else if syntax.allowsBareValue {
            guard !trimmed.isEmpty, trimmed.allSatisfy(Self.isBareByte) else {
                throw Self.invalid("an unquoted key must be visible ASCII without \" \\ , or ;")
            }
            text = Array(trimmed)
        } else {
            throw Self.invalid("the key must be a quoted string (RFC 8941 sf-string)")
        }
        guard !text.isEmpty, text.count <= Self.maximumByteCount else {
            throw Self.invalid("the key must be 1 to \(Self.maximumByteCount) bytes")
        }
        self.value = String(decoding: text, as: UTF8.self)
    }

    /// A short, log-safe form: the key's length, not its text.
    public var description: String { "IdempotencyKey(\(value.utf8.count) bytes)" }

    /// RFC 8941 §4.2.5: DQUOTE, then chars %x20-21 / %x23-5B / %x5D-7E or `\"` `\\`, then DQUOTE,
    /// and nothing after it.
    private static func parseString(_ bytes: [UInt8]) throws -> [UInt8] {
        var output: [UInt8] = []
        var index = 1
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\\"):
                guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\"") || bytes[index + 1] == UInt8(ascii: "\\") else {
                    throw invalid("a backslash in the key must escape \" or \\")
                }
                output.append(bytes[index + 1])
                index += 2
            case UInt8(ascii: "\""):
                guard index == bytes.count - 1 else { throw invalid("nothing may follow the key's closing quote") }
                return output
            case 0x20...0x7E:
                output.append(byte)
                index += 1
            default:
                throw invalid("the key may only contain visible ASCII and spaces")
            }
        }
        throw invalid("the key's closing quote is missing")
    }

    private static func isBareByte(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
            && byte != UInt8(ascii: ",") && byte != UInt8(ascii: ";")
    }

    private static func invalid(_ message: String) -> HTTPProblem {
        HTTPProblem(.idempotencyKeyInvalid, detail: message)
    }
}
