import Crypto
public import Foundation

/// What a request looked like when its key was first used: SHA-256 of its canonical form.
///
/// Reusing a key with a different body is a client bug (or an attack); Unrace refuses it with
/// ``UnraceError/Code/fingerprintMismatch`` instead of replaying an outcome that belongs to
/// another request.
public struct Fingerprint: Sendable, Hashable {
    /// The 32 bytes of the SHA-256 digest.
    public let bytes: [UInt8]

    /// The fingerprint of the canonical JSON of `value`: keys sorted, no whitespace, slashes
    /// unescaped, so a value hashes alike however its dictionaries with `String` or `Int` keys
    /// were built. Arrays keep their order — also the arrays `JSONEncoder` writes for a `Set`
    /// and for a dictionary with other keys, whose iteration order differs from one process to
    /// the next: turn those into sorted arrays first, or a redelivery handled by another process
    /// is refused with ``UnraceError/Code/fingerprintMismatch``. Dates are written as whole
    /// milliseconds since 1970 (two that differ by less are one request). Strings are hashed
    /// as their exact UTF-8, not normalised: equal-looking spellings (`café` composed and
    /// decomposed, which Swift compares equal) are two requests, and a key reused across them is
    /// refused with ``UnraceError/Code/fingerprintMismatch`` rather than replayed. Numbers are
    /// hashed as `JSONEncoder` writes them (`-0.0` and `0.0` differ).
    public static func json(_ value: some Encodable) throws -> Fingerprint {
        let data: Data
        do {
            data = try canonicalEncoder.encode(value)
        } catch {
            throw UnraceError(.invalidArgument, "request could not be encoded as JSON for its fingerprint", underlying: error)
        }
        return Fingerprint(digestOf: data)
    }

    /// The fingerprint of bytes the caller chose (for example the raw request body).
    public static func bytes(_ bytes: some DataProtocol) -> Fingerprint {
        Fingerprint(digestOf: bytes)
    }

    /// The fingerprint of a string's UTF-8 bytes.
    public static func text(_ text: String) -> Fingerprint {
        Fingerprint(digestOf: Array(text.utf8))
    }

    /// The fingerprint for callers that do not check request bodies: every request matches it.
    public static let none = Fingerprint(rawBytes: [])

    /// Wraps stored digest bytes, as read back from a store.
    public init(rawBytes: [UInt8]) { self.bytes = rawBytes }

    private init(digestOf data: some DataProtocol) {
        self.bytes = Array(SHA256.hash(data: data))
    }

    /// Whether a stored fingerprint accepts this request. ``none`` on either side matches anything.
    public func matches(_ stored: Fingerprint) -> Bool {
        bytes.isEmpty || stored.bytes.isEmpty || bytes == stored.bytes
    }

    /// Lower-case hexadecimal, for logs and debugging.
    public var hex: String {
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(Self.hexDigits[Int(byte >> 4)])
            text.append(Self.hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static let canonicalEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()
}
