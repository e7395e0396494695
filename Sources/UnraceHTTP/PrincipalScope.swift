public import UnraceCore

/// How a client's identity (a principal) becomes the Unrace ``UnraceCore/Scope`` its
/// idempotency keys live in, so that one client's key never replays another client's response.
///
/// The principal's exact bytes become `p:` and the first 40 hex digits (160 bits) of their
/// SHA-256: any text (an email, a token's subject) maps to a valid scope, and the principal never
/// reaches the store or its logs. ``UnraceCore/Scope/init(_:)`` refuses that prefix, so no
/// caller can name a client's scope (from a tenant header, say) and store what its keys replay. Two principals share a scope only when their bytes are equal:
/// equal-looking spellings (`café` composed and decomposed) are two principals, as they are two
/// ids to an identity provider that compares bytes. A principal must be exactly what the client
/// sent: text that holds U+FFFD — what a lossy decoding leaves of bytes that were not UTF-8, as
/// HTTP servers decode header values — is refused, so two ids that differ only in such bytes
/// never merge.
public enum PrincipalScope {
    /// The longest principal accepted, in bytes.
    public static var byteCountMaximum: Int { 1_024 }

    /// The rule a principal's text follows: the shared ``UnraceCore/NameRule`` (not empty, no
    /// control or format characters). The rule only refuses: the scope is made from the bytes as
    /// sent, not from the rule's NFC form, and ``byteCountMaximum`` bounds the bytes as sent. So the
    /// rule's own bound is three times that, the most NFC can grow UTF-8 text (Unicode's UAX #15):
    /// a principal within ``byteCountMaximum`` is never refused for what its NFC form measures.
    public static var rule: NameRule { NameRule(kind: "principal", maximumByteCount: 3 * byteCountMaximum, code: .invalidScope) }

    /// The principal a request header names: its value when the request sends the header exactly
    /// once, else `nil` (refused, 400 `principal_invalid`). Of two values, one may be the client's
    /// own, sent ahead of the one a gateway appended: taking either could read another client's
    /// stored responses. Pass every value the request sent for the header, in order.
    public static func headerValue(_ values: [String]) -> String? {
        values.count == 1 ? values[0] : nil
    }

    /// The scope for a principal's exact bytes, or `nil` when the text breaks ``rule``, holds
    /// U+FFFD, or is over ``byteCountMaximum`` bytes as sent.
    public static func scope(for principal: String) -> Scope? {
        guard !principal.unicodeScalars.contains("\u{FFFD}"), principal.utf8.count <= byteCountMaximum,
            (try? rule.validate(principal)) != nil
        else { return nil }
        return try? Scope(stored: Scope.principalPrefix + Fingerprint.text(principal).hex.prefix(40))
    }
}
