public import Foundation
public import HTTPTypes

/// A response as the idempotency layer stores it, to give every retry of the key the same
/// status, headers and body.
///
/// Stored: the status and every header field except those that describe one transfer rather
/// than the response (``transientFields``: `Date`, `Connection`, `Keep-Alive`,
/// `Transfer-Encoding`, `Content-Length`, `Set-Cookie`, and the idempotency headers this layer
/// adds itself). The body is stored as bytes.
public struct StoredResponse: Codable, Sendable, Hashable {
    /// One stored header field.
    public struct Field: Codable, Sendable, Hashable {
        /// The field name as sent.
        public var name: String
        /// The field value.
        public var value: String
    }

    /// The status code.
    public var status: Int
    /// The stored header fields, in order.
    public var fields: [Field]
    /// The body bytes.
    public var body: Data

    /// Fields never stored: they describe one transfer, or this layer sets them on each reply.
    public static let transientFields: Set<HTTPField.Name> = [
        .date, .connection, .transferEncoding, .contentLength, .setCookie,
        HTTPField.Name("Keep-Alive")!, .idempotentReplayed, .idempotencyKeyRetention,
    ]

    /// Captures a response head and its collected body.
    public init(_ response: HTTPResponse, body: Data) {
        self.status = response.status.code
        self.fields = response.headerFields
            .filter { !Self.transientFields.contains($0.name) }
            .map { Field(name: $0.name.rawName, value: $0.value) }
        self.body = body
    }

    /// The stored response head. Fields whose stored name or value is no longer valid are dropped;
    /// a status HTTP cannot send (outside 100…999: a stored row changed by hand) reads as 500.
    public var head: HTTPResponse {
        var fields = HTTPFields()
        for field in self.fields {
            guard let name = HTTPField.Name(field.name) else { continue }
            fields.append(HTTPField(name: name, value: field.value))
        }
        return HTTPResponse(status: .checked(code: status), headerFields: fields)
    }
}

extension HTTPResponse.Status {
    /// The status with `code`, or 500 for a code HTTP cannot send: outside 100…999 (a status line
    /// has three digits; `HTTPResponse.Status(code:)` traps past 999). A route's or a stored row's
    /// mistake answers, never crashes the server.
    package static func checked(code: Int, reasonPhrase: String? = nil) -> HTTPResponse.Status {
        guard (100...999).contains(code) else { return .internalServerError }
        return reasonPhrase.map { .init(code: code, reasonPhrase: $0) } ?? .init(code: code)
    }
}

extension HTTPField.Name {
    /// `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header).
    public static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    /// `Idempotent-Replayed: true` marks a response replayed from a stored outcome (as Stripe does).
    public static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
    /// `Idempotency-Key-Retention`: how many seconds a completed key's response stays stored,
    /// counted from its completion (the `Operations` retention; a replay states the same figure,
    /// not the time left).
    public static let idempotencyKeyRetention = HTTPField.Name("Idempotency-Key-Retention")!
}
