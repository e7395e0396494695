/// An RFC 9110 entity tag (§8.8.3): an opaque quoted string, strong or weak (`W/"…"`).
///
/// A versioned resource's tag is its version: ``init(version:)`` gives `"7"`, strong, because
/// the version changes with every write of the stored value.
public struct EntityTag: Sendable, Hashable, CustomStringConvertible {
    /// The opaque text between the quotes.
    public let opaque: String
    /// Whether the tag is weak (`W/` prefix).
    public let isWeak: Bool

    /// The longest opaque text accepted when parsing, in bytes.
    public static let maximumByteCount = 256

    /// A tag from its parts. `opaque` must be etagc characters (`!`, `#`-`~` except `"`… see RFC 9110).
    public init?(opaque: String, isWeak: Bool = false) {
        guard opaque.utf8.count <= Self.maximumByteCount, opaque.utf8.allSatisfy(Self.isETagChar) else { return nil }
        self.opaque = opaque
        self.isWeak = isWeak
    }

    /// The strong tag of a record version: `"<version>"`.
    public init(version: Int64) {
        self.opaque = String(version)
        self.isWeak = false
    }

    /// The record version this tag names, if it is a strong tag made by ``init(version:)``.
    public var version: Int64? {
        guard !isWeak, let value = Int64(opaque), String(value) == opaque else { return nil }
        return value
    }

    /// The header form: `"7"` or `W/"7"`.
    public var description: String { (isWeak ? "W/" : "") + "\"" + opaque + "\"" }

    /// Strong comparison (RFC 9110 §8.8.3.2): both strong and the same opaque text. `If-Match` uses it.
    public func strongMatches(_ other: EntityTag) -> Bool { !isWeak && !other.isWeak && opaque == other.opaque }

    /// Weak comparison: the same opaque text, weak or not. `If-None-Match` uses it.
    public func weakMatches(_ other: EntityTag) -> Bool { opaque == other.opaque }

    /// etagc = %x21 / %x23-7E / obs-text; obs-text (bytes ≥ 0x80) is refused here, as clients
    /// should not send it.
    static func isETagChar(_ byte: UInt8) -> Bool { byte == 0x21 || (0x23...0x7E).contains(byte) }
}

/// The value of an `If-Match` or `If-None-Match` header: `*` or a list of entity tags.
public enum EntityTagCondition: Sendable, Hashable {
    /// `*`: any current representation.
    case any
    /// A comma-separated list of tags.
    case tags([EntityTag])

    /// The most tags one header may list.
    public static let maximumTagCount = 64

    /// Parses a header value (several header lines arrive joined with `, `).
    /// - Throws: ``HTTPProblem`` with code ``HTTPProblem/Code/conditionInvalid``.
    public init(parsing header: String) throws {
        let bytes = Array(header.utf8)
        var index = 0
        func skipSpace() { while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 } }
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "*") {
            index += 1
            skipSpace()
            guard index == bytes.count else { throw Self.invalid("`*` must stand alone") }
            self = .any
            return
        }
        var tags: [EntityTag] = []
        while true {
            skipSpace()
            if index == bytes.count { break }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }  // empty list elements are allowed
            var weak = false
            if bytes[index] == UInt8(ascii: "W"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "/") {
                weak = true
                index += 2
            }
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw Self.invalid("an entity tag must be quoted") }
            index += 1
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                guard EntityTag.isETagChar(bytes[index]) else { throw Self.invalid("an entity tag may only contain visible ASCII") }
                index += 1
            }
            guard index < bytes.count else { throw Self.invalid("an entity tag's closing quote is missing") }
            let opaque = String(decoding: bytes[start..<index], as: UTF8.self)
            index += 1
            guard let tag = EntityTag(opaque: opaque, isWeak: weak) else {
                throw Self.invalid("an entity tag is longer than \(EntityTag.maximumByteCount) bytes")
            }
            tags.append(tag)
            guard tags.count <= Self.maximumTagCount else { throw Self.invalid("more than \(Self.maximumTagCount) entity tags") }
            skipSpace()
            guard index == bytes.count || bytes[index] == UInt8(ascii: ",") else {
                throw Self.invalid("entity tags must be separated by commas")
            }
        }
        guard !tags.isEmpty else { throw Self.invalid("the header lists no entity tag") }
        self = .tags(tags)
    }

    /// `If-Match` (RFC 9110 §13.1.1): true when `*` and the resource exists, or when a listed
    /// tag strongly matches the current one.
    public func ifMatchHolds(current: EntityTag?) -> Bool {
        guard let current else { return false }
        switch self {
        case .any: return true
        case .tags(let tags): return tags.contains { $0.strongMatches(current) }
        }
    }

    /// `If-None-Match` (RFC 9110 §13.1.2): false when `*` and the resource exists, or when a
    /// listed tag weakly matches the current one.
    public func ifNoneMatchHolds(current: EntityTag?) -> Bool {
        guard let current else { return true }
        switch self {
        case .any: return false
        case .tags(let tags): return !tags.contains { $0.weakMatches(current) }
        }
    }

    private static func invalid(_ message: String) -> HTTPProblem { HTTPProblem(.conditionInvalid, detail: message) }
}
