public import Foundation
public import HTTPTypes
public import UnraceCore

/// What makes two requests "the same request" for an idempotency key.
///
/// The draft leaves the choice to the server. Unrace hashes, each part length-prefixed so no
/// two different requests can produce the same input: the method, the path with its query, the
/// values of the chosen headers (in the order given, absent ones marked absent), and the body.
/// With ``canonicalJSON`` on, a JSON body is hashed in canonical form (keys sorted, no
/// insignificant whitespace), so `{"a":1, "b":2}` and `{"b":2,"a":1}` are the same request; a
/// body that is not valid JSON is hashed as its bytes.
public struct RequestFingerprint: Sendable, Hashable {
    /// Header fields whose values belong to the request's identity (default: `Content-Type`,
    /// `If-Match`, `If-None-Match`: a retry with a corrected precondition is a new request, not
    /// a replay of the stored 412).
    public var headers: [HTTPField.Name]
    /// Hash JSON bodies in canonical form (default `true`).
    public var canonicalJSON: Bool

    /// The default: method, path, `Content-Type`, the conditional headers and the body, JSON in
    /// canonical form.
    public init(headers: [HTTPField.Name] = [.contentType, .ifMatch, .ifNoneMatch], canonicalJSON: Bool = true) {
        self.headers = headers
        self.canonicalJSON = canonicalJSON
    }

    /// The fingerprint of a request and its collected body.
    public func fingerprint(of request: HTTPRequest, body: some DataProtocol) -> Fingerprint {
        var input = Data()
        func append(_ bytes: some DataProtocol) {
            var count = UInt64(bytes.count).bigEndian
            withUnsafeBytes(of: &count) { input.append(contentsOf: $0) }
            input.append(contentsOf: bytes)
        }
        append(Array(request.method.rawValue.utf8))
        append(Array((request.path ?? "").utf8))
        for name in headers {
            if let value = request.headerFields[name] {
                append([1])
                append(Array(value.utf8))
            } else {
                append([0])
            }
        }
        append(canonicalJSON ? Self.canonical(body) : Data(body))
        return Fingerprint.bytes(input)
    }

    /// The canonical form of a JSON body, or the bytes themselves when they are not JSON.
    ///
    /// Object members are sorted by their key's text and insignificant whitespace is dropped;
    /// every string and number keeps its exact text, so two bodies are the same only when their
    /// values are (`9007199254740993` and `9007199254740992` stay different, as `1.0` and `1` do).
    static func canonical(_ body: some DataProtocol) -> Data {
        let bytes = Array(body)
        var parser = CanonicalJSON(bytes: bytes)
        guard let output = parser.document() else { return Data(bytes) }
        return Data(output)
    }
}

/// A strict JSON reader that writes the canonical form as it goes: objects' members sorted by
/// key text, no whitespace, scalars copied byte for byte. `nil` for anything that is not JSON,
/// or nested deeper than ``depthMaximum``.
struct CanonicalJSON {
    static let depthMaximum = 256
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func document() -> [UInt8]? {
        guard let value = value(depth: 0) else { return nil }
        skipSpace()
        return index == bytes.count ? value : nil
    }

    private mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private mutating func value(depth: Int) -> [UInt8]? {
        guard depth < Self.depthMaximum else { return nil }
        skipSpace()
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"): return object(depth: depth)
        case UInt8(ascii: "["): return array(depth: depth)
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        default: return number()
        }
    }

    private mutating func object(depth: Int) -> [UInt8]? {
        index += 1
        var members: [(key: [UInt8], value: [UInt8])] = []
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return Array("{}".utf8)
        }
        while true {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let key = string() else { return nil }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            guard let value = value(depth: depth + 1) else { return nil }
            members.append((key, value))
            skipSpace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            guard bytes[index] == UInt8(ascii: "}") else { return nil }
            index += 1
            break
        }
        // A stable sort: repeated keys keep their order, so bodies that differ in them stay different.
        let sorted = members.enumerated().sorted { a, b in
            a.element.key.lexicographicallyPrecedes(b.element.key) || (a.element.key == b.element.key && a.offset < b.offset)
        }
        var output: [UInt8] = [UInt8(ascii: "{")]
        for (position, member) in sorted.enumerated() {
            if position > 0 { output.append(UInt8(ascii: ",")) }
            output += member.element.key
            output.append(UInt8(ascii: ":"))
            output += member.element.value
        }
        output.append(UInt8(ascii: "}"))
        return output
    }

    private mutating func array(depth: Int) -> [UInt8]? {
        index += 1
        var output: [UInt8] = [UInt8(ascii: "[")]
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return Array("[]".utf8)
        }
        while true {
            guard let value = value(depth: depth + 1) else { return nil }
            output += value
            skipSpace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                output.append(UInt8(ascii: ","))
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "]") else { return nil }
            index += 1
            output.append(UInt8(ascii: "]"))
            return output
        }
    }

    /// A string, copied with its quotes and escapes as sent.
    private mutating func string() -> [UInt8]? {
        let start = index
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                return Array(bytes[start..<index])
            case UInt8(ascii: "\\"):
                index += 2
            case 0x00..<0x20:
                return nil
            default:
                index += 1
            }
        }
        return nil
    }

    private mutating func literal(_ text: String) -> [UInt8]? {
        let expected = Array(text.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<(index + expected.count)]) == expected else { return nil }
        index += expected.count
        return expected
    }

    /// A number in JSON's grammar, copied as sent.
    private mutating func number() -> [UInt8]? {
        let start = index
        func digits() -> Int {
            let first = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            return index - first
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "0") { index += 1 } else if digits() == 0 { return nil }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return nil }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { return nil }
        }
        return Array(bytes[start..<index])
    }
}
