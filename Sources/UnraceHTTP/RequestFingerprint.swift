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
    /// Header fields whose values belong to the request's identity (default: `Content-Type`).
    public var headers: [HTTPField.Name]
    /// Hash JSON bodies in canonical form (default `true`).
    public var canonicalJSON: Bool

    /// The default: method, path, `Content-Type` and the body, JSON in canonical form.
    public init(headers: [HTTPField.Name] = [.contentType], canonicalJSON: Bool = true) {
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
    static func canonical(_ body: some DataProtocol) -> Data {
        let data = Data(body)
        guard !data.isEmpty,
              let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
              let canonical = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        else { return data }
        return canonical
    }
}
