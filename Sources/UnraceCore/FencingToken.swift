/// A number that grows every time an operation key changes hands.
///
/// Every write a holder makes under a key carries the token it was given; the store accepts it
/// only while that token is still the key's current one. A holder that paused past its lease and
/// was taken over holds a smaller token than the key's, so its writes are refused ("fenced")
/// instead of racing the new holder's.
public struct FencingToken: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The token's value; the first holder of a key gets 1.
    public let value: Int64

    /// Wraps a token value.
    public init(_ value: Int64) { self.value = value }

    /// The token given to the first holder of a key.
    public static let first = FencingToken(1)

    /// The token the next holder gets (`Int64.max` stays there: a key cannot change hands 2^63
    /// times; only a token built by hand can be there).
    public var next: FencingToken { FencingToken(value == .max ? .max : value + 1) }

    /// Orders by value.
    public static func < (lhs: FencingToken, rhs: FencingToken) -> Bool { lhs.value < rhs.value }
    /// A short, log-safe text form.
    public var description: String { "#\(value)" }
}
