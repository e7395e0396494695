public import Foundation
public import HTTPTypes
import UnraceCore

/// An RFC 9457 problem: a status, a stable `type` per code, a title and a detail.
///
/// The body is `application/problem+json`:
/// `{"type":"urn:unrace:problem:idempotency_key_reused","title":"…","status":422,"detail":"…","code":"idempotency_key_reused"}`.
/// `type` and `code` never change for a given code, so clients can branch on them; `title`
/// and `detail` are for people. A detail never carries a key, a principal or a request body.
public struct HTTPProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// A problem's stable code. Applications add their own with ``init(_:)``.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The code's text: lower case, words joined by `_`.
        public let rawValue: String
        /// A code of the application's own (for example `"out_of_stock"`).
        public init(_ rawValue: String) { self.rawValue = rawValue }
        /// The code's text.
        public var description: String { rawValue }

        /// 400: a configured route was called without an `Idempotency-Key` header.
        public static let idempotencyKeyMissing = Code("idempotency_key_missing")
        /// 400: the `Idempotency-Key` header is malformed, too long or repeated.
        public static let idempotencyKeyInvalid = Code("idempotency_key_invalid")
        /// 422: the key was already used with a different request (method, path, headers or body).
        public static let idempotencyKeyReused = Code("idempotency_key_reused")
        /// 409: a request with this key is still being processed.
        public static let requestInProgress = Code("request_in_progress")
        /// 400: the request names no principal (client or tenant), or an unusable one.
        public static let principalInvalid = Code("principal_invalid")
        /// 413: the request body is larger than the configured limit.
        public static let bodyTooLarge = Code("body_too_large")
        /// 412: `If-Match` or `If-None-Match` did not hold for the resource's current version.
        public static let preconditionFailed = Code("precondition_failed")
        /// 428: a mutation of a versioned resource came without `If-Match`.
        public static let preconditionRequired = Code("precondition_required")
        /// 400: a conditional header is malformed.
        public static let conditionInvalid = Code("condition_invalid")
        /// 400: the request is malformed in some other way.
        public static let badRequest = Code("bad_request")
        /// 404: no such resource.
        public static let notFound = Code("not_found")
        /// 409: the resource changed since it was read, or the request conflicts with its state.
        public static let conflict = Code("conflict")
        /// 500: the server failed; nothing about the request was stored.
        public static let internalError = Code("internal_error")
        /// 405: the route exists, not with this method.
        public static let methodNotAllowed = Code("method_not_allowed")
        /// 408: the request (its body) did not arrive in time.
        public static let requestTimeout = Code("request_timeout")
        /// 503: a retryable condition (the database is unreachable, failing over, read-only):
        /// try again after `Retry-After`.
        public static let serviceUnavailable = Code("service_unavailable")
    }

    /// The stable code.
    public var code: Code
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// A short summary that does not change between occurrences.
    public var title: String
    /// What went wrong this time, for people; never secrets, keys or payloads.
    public var detail: String?

    /// A problem with an explicit status and title.
    public init(_ code: Code, status: HTTPResponse.Status, title: String, detail: String? = nil) {
        self.code = code
        self.status = status
        self.title = title
        self.detail = detail
    }

    /// One of the built-in codes, with its standard status and title.
    public init(_ code: Code, detail: String? = nil) {
        let (status, title) = Self.standard[code] ?? (.badRequest, "Bad request")
        self.init(code, status: status, title: title, detail: detail)
    }

    /// The problem for a bare status a framework answered with (an unknown route, a request it
    /// could not parse): the built-in code of that status, or `http_<status>`.
    public init(status: HTTPResponse.Status, detail: String? = nil) {
        let code = Self.byStatus[status.code] ?? Code("http_\(status.code)")
        let title = Self.standard[code]?.1 ?? (status.reasonPhrase.isEmpty ? "HTTP \(status.code)" : status.reasonPhrase)
        self.init(code, status: status, title: title, detail: detail)
    }

    /// The seconds a client should wait before retrying, for the problems that ask it to (every
    /// 503, `409 request_in_progress`): sent as `Retry-After`. `nil` for the others.
    public var retryAfterSeconds: Int? {
        code == .serviceUnavailable || code == .requestInProgress || status == .serviceUnavailable ? 1 : nil
    }

    /// The problem type URI: `urn:unrace:problem:` and the code.
    public var type: String { "urn:unrace:problem:\(code.rawValue)" }

    /// The media type of the body: `application/problem+json`.
    public static let mediaType = "application/problem+json"

    /// Whether a response with this status may carry a body: not a 1xx, 204 or 304 (RFC 9110
    /// §6.4.1). A route that throws one of those (`HTTPError(.notModified)`) is answered without
    /// a body or a content type: bytes after such a head would be read as the start of the next
    /// response on the connection.
    public var hasBody: Bool {
        !(100..<200).contains(status.code) && status.code != 204 && status.code != 304
    }

    /// The JSON body (keys sorted, so equal problems encode alike).
    public func jsonBody() -> Data {
        let body = Body(type: type, title: title, status: status.code, detail: detail, code: code.rawValue)
        return (try? Self.encoder.encode(body)) ?? Data("{}".utf8)
    }

    /// A short, log-safe form: status and code, never the detail.
    public var description: String { "HTTPProblem(\(status.code) \(code))" }

    /// The JSON shape of a problem; also what clients decode.
    public struct Body: Codable, Sendable, Hashable {
        /// The problem type URI.
        public var type: String
        /// The short summary.
        public var title: String
        /// The HTTP status code.
        public var status: Int
        /// What went wrong this time.
        public var detail: String?
        /// The stable code (an extension member).
        public var code: String
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The built-in code a bare status maps to.
    private static let byStatus: [Int: Code] = [
        400: .badRequest, 404: .notFound, 405: .methodNotAllowed, 408: .requestTimeout, 409: .conflict,
        412: .preconditionFailed, 413: .bodyTooLarge, 428: .preconditionRequired, 500: .internalError, 503: .serviceUnavailable,
    ]

    private static let standard: [Code: (HTTPResponse.Status, String)] = [
        .idempotencyKeyMissing: (.badRequest, "Idempotency-Key header required"),
        .idempotencyKeyInvalid: (.badRequest, "Idempotency-Key header invalid"),
        .idempotencyKeyReused: (.unprocessableContent, "Idempotency-Key reused with a different request"),
        .requestInProgress: (.conflict, "A request with this Idempotency-Key is in progress"),
        .principalInvalid: (.badRequest, "Client identity missing or invalid"),
        .bodyTooLarge: (.contentTooLarge, "Request body too large"),
        .preconditionFailed: (.preconditionFailed, "Precondition failed"),
        .preconditionRequired: (.preconditionRequired, "Precondition required"),
        .conditionInvalid: (.badRequest, "Conditional header invalid"),
        .badRequest: (.badRequest, "Bad request"),
        .notFound: (.notFound, "Not found"),
        .conflict: (.conflict, "Conflict"),
        .internalError: (.internalServerError, "Internal server error"),
        .methodNotAllowed: (.methodNotAllowed, "Method not allowed"),
        .requestTimeout: (.requestTimeout, "Request timeout"),
        .serviceUnavailable: (.serviceUnavailable, "Service unavailable, retry later"),
    ]
}

extension HTTPProblem {
    /// The problem to answer for an error no handler answered: a problem itself; a retryable
    /// store condition (``UnraceCore/UnraceError/isRetryable``: unreachable, failing over,
    /// read-only, conflicts past the retry limit) is 503 `service_unavailable`, to retry after
    /// `Retry-After`; anything else is 500 `internal_error`. The error's own text is never sent:
    /// it may name keys.
    public static func unhandled(_ error: any Error) -> HTTPProblem {
        if let problem = error as? HTTPProblem { return problem }
        if let error = error as? UnraceError, error.isRetryable {
            return HTTPProblem(.serviceUnavailable, detail: "the database cannot take this request now; retry after Retry-After")
        }
        return HTTPProblem(.internalError, detail: "the server failed to handle this request")
    }
}
