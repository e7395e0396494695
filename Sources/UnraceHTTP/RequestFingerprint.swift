public import Foundation
public import HTTPTypes
public import UnraceCore

/// What makes two requests "the same request" for an idempotency key.
///
/// The draft leaves the choice to the server. Unrace hashes, each part length-prefixed so no
/// two different requests can produce the same input: the method, the path with its query, the
/// values of the chosen headers (in the order given, absent ones marked absent), and the body.
/// With ``canonicalJSON`` on, a JSON body — one whose `Content-Type` is `application/json` or a
/// `+json` type — is hashed in canonical form (keys sorted, no insignificant whitespace), so
/// `{"a":1, "b":2}` and `{"b":2,"a":1}` are the same request. Any other body (another media type,
/// none, or not valid JSON) is hashed as its bytes: a `text/plain` or octet-stream route may store
/// or sign the exact bytes.
public struct RequestFingerprint: Sendable, Hashable {
    /// Header fields whose values belong to the request's identity (default: `Content-Type`,
    /// `If-Match`, `If-None-Match`: a retry with a corrected precondition is a new request, not
    /// a replay of the stored 412). `Host` names the request's authority (`:authority`, or the
    /// `Host` field), wherever the server put it: add it where one principal's keys are shared
    /// by several hosts (host-based tenants). (Until this was fixed, Hummingbird hashed a listed
    /// `Host` as absent: a key stored then and retried after an upgrade gets 422.)
    public var headers: [HTTPField.Name]
    /// Hash JSON bodies (`application/json`, `+json`) in canonical form (default `true`).
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
            // HTTP/1 servers differ on where `Host` lands: NIOHTTPTypes (Hummingbird) moves it to
            // the authority, Vapor keeps it a field. `Host` names either, so it counts on both.
            if let value = request.headerFields[name] ?? (name.canonicalName == "host" ? request.authority : nil) {
                append([1])
                append(Array(value.utf8))
            } else {
                append([0])
            }
        }
        append(canonicalJSON && Self.isJSON(request.headerFields[.contentType]) ? Self.canonical(body) : Data(body))
        return Fingerprint.bytes(input)
    }

    /// Whether a `Content-Type` names JSON: `application/json` or a `+json` structured suffix
    /// (`application/problem+json`), compared without case and parameters.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
            .trimmingCharacters(in: .whitespaces).lowercased()
        return mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }

    /// The canonical form of a JSON body, or the bytes themselves when they are not JSON.
    ///
    /// Object members are sorted by their key's *decoded* text (`"a"` and `"\u0061"` are one key),
    /// strings are written with one escaping (only `"`, `\` and control characters escaped; a lone
    /// surrogate escape kept, lowercase), and insignificant whitespace is dropped. Numbers keep
    /// their exact text, so two bodies are the same only when their values are
    /// (`9007199254740993` and `9007199254740992` stay different, as `1.0` and `1` do). Members
    /// with one key keep their order (a stable sort), so bodies that repeat a key in different
    /// orders — which parsers resolve differently — stay different requests.
    ///
    /// Linear in the body's size: the document is read once into a tree of byte ranges and
    /// written once.
    static func canonical(_ body: some DataProtocol) -> Data {
        let bytes = Array(body)
        var parser = CanonicalJSON(bytes: bytes)
        guard let output = parser.document() else { return Data(bytes) }
        return Data(output)
    }
}
