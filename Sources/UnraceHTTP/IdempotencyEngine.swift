import Foundation
public import HTTPTypes
public import Unrace

/// The `Idempotency-Key` rules (draft-ietf-httpapi-idempotency-key-header), written once for
/// every framework: the Hummingbird and Vapor middlewares are thin adapters that turn their
/// request into an `HTTPRequest`, run the route through ``respond(to:principal:body:handler:)``,
/// and send back the ``EngineResponse``.
///
/// For a request with one of the configured methods:
/// - no `Idempotency-Key` → 400 `idempotency_key_missing` (unless keys are optional); a
///   malformed, repeated or over-long key → 400 `idempotency_key_invalid`;
/// - the first request with a key runs the handler in a store transaction, whose writes commit
///   together with the stored response;
/// - a retry after completion gets the stored status, headers and body with
///   `Idempotent-Replayed: true`, without running the handler;
/// - a retry while the first runs waits and replays, or gets 409 (``WhileInProgress``);
/// - the same key with a different request → 422 `idempotency_key_reused`;
/// - a body over the limit → 413; a principal that is missing or unusable → 400;
/// - a retryable store condition (failing over, read-only, unreachable) → 503 with `Retry-After`.
public struct IdempotencyEngine<S: Store>: Sendable {
    /// The operations the keys are recorded with (its store, lease and retention).
    public let operations: Operations<S>
    /// The validated settings.
    public let configuration: IdempotencyConfiguration

    /// - Throws: ``UnraceCore/UnraceError/Code/invalidConfiguration`` when a limit is out of range.
    public init(operations: Operations<S>, configuration: IdempotencyConfiguration = .init()) throws {
        self.operations = operations
        self.configuration = try configuration.validated()
    }

    /// What a handler produced: its response head and collected body, and whether it was an
    /// HTTP error it threw (its writes roll back to a savepoint taken after the claim; the error
    /// response is stored in the same step, under the claim).
    public struct HandlerResponse: Sendable {
        /// The response head (status and header fields) as the handler made it.
        public var head: HTTPResponse
        /// The body, collected.
        public var body: [UInt8]
        /// Whether the handler threw it (an HTTP error), rather than returned it.
        public var thrown: Bool

        /// A handler's response.
        public init(head: HTTPResponse, body: [UInt8], thrown: Bool = false) {
            self.head = head
            self.body = body
            self.thrown = thrown
        }
    }

    /// Thrown by an adapter's handler closure when the response body is larger than
    /// ``IdempotencyConfiguration/responseBodyByteCountLimit``: nothing is stored, the client gets
    /// a 500 problem.
    public struct ResponseTooLarge: Error {
        /// The error.
        public init() {}
    }

    /// What the engine decided.
    public enum Outcome: Sendable {
        /// The rules do not apply (another method, or no key where keys are optional): run the
        /// route as usual.
        case passThrough
        /// Send this response.
        case respond(EngineResponse)
    }

    /// Applies the rules to one request.
    /// - Parameters:
    ///   - request: the request head (method, path, header fields).
    ///   - principal: whose key it is (a header, the authenticated identity); `nil` refuses the
    ///     request with 400 `principal_invalid`.
    ///   - bodyLimit: the largest body the adapter takes, when it is below
    ///     ``IdempotencyConfiguration/requestBodyByteCountLimit`` (Vapor's application-wide limit);
    ///     `nil`: the configuration's. The 413's detail names it.
    ///   - body: collects the request body, up to the limit; `nil` when it is larger (413).
    ///   - handler: runs the route with the transaction its writes must go through. It returns
    ///     the route's response, or throws ``ResponseTooLarge``; any other error commits nothing,
    ///     frees the key, and is rethrown (retryable store errors become 503 here instead).
    public func respond(
        to request: HTTPRequest,
        principal: String?,
        bodyLimit: Int? = nil,
        body: () async throws -> [UInt8]?,
        handler: (S.Transaction) async throws -> HandlerResponse
    ) async throws -> Outcome {
        guard configuration.methods.contains(request.method) else { return .passThrough }
        let values = request.headerFields[values: .idempotencyKey]
        guard let header = values.first else {
            if !configuration.requiresKey { return .passThrough }
            return .respond(.problem(HTTPProblem(.idempotencyKeyMissing, detail: "send an Idempotency-Key header with this request")))
        }
        let key: IdempotencyKey
        do {
            guard values.count == 1 else {
                throw HTTPProblem(.idempotencyKeyInvalid, detail: "send one Idempotency-Key header, not several")
            }
            key = try IdempotencyKey(parsing: header, syntax: configuration.keySyntax)
            _ = try OperationKey(key.value)
        } catch let error as HTTPProblem {
            return .respond(.problem(error))
        } catch {
            return .respond(.problem(HTTPProblem(.idempotencyKeyInvalid, detail: "the key is not a valid operation key")))
        }
        guard let principal, let scope = PrincipalScope.scope(for: principal) else {
            return .respond(.problem(HTTPProblem(.principalInvalid, detail: "the request names no usable client identity")))
        }
        guard let collected = try await body() else {
            return .respond(
                .problem(
                    HTTPProblem(
                        .bodyTooLarge,
                        detail: "the body is larger than \(bodyLimit ?? configuration.requestBodyByteCountLimit) bytes"
                    )
                )
            )
        }
        let fingerprint = configuration.fingerprint.fingerprint(of: request, body: collected)
        do {
            switch configuration.whileInProgress.mode {
            case .wait(let timeout):
                return .respond(try await waitingRun(key, scope, fingerprint, timeout, handler))
            case .conflict:
                return .respond(try await claimingRun(key, scope, fingerprint, handler))
            }
        } catch let unstored as Unstored {
            return .respond(unstored.response)
        } catch let failure as HandlerFailure {
            // The handler's own error, not a verdict of the rules: rethrown as it was.
            throw failure.error
        } catch let error as UnraceError {
            switch error.code {
            case .fingerprintMismatch:
                return .respond(.problem(HTTPProblem(.idempotencyKeyReused, detail: "this key was used with a different request")))
            case .inProgress, .waitTimedOut:
                return .respond(.problem(HTTPProblem(.requestInProgress, detail: "a request with this key is still being processed")))
            case .unknownScope, .invalidScope:
                return .respond(.problem(HTTPProblem(.principalInvalid, detail: "this client may not use idempotency keys here")))
            default:
                // The database failing over, unreachable or read-only: nothing was stored (or, for
                // outcome_unknown, a retry replays what was): 503 with Retry-After.
                if error.isRetryable { return .respond(.problem(HTTPProblem.unhandled(error))) }
                throw error
            }
        }
    }

    /// ``WhileInProgress/wait(upTo:)``: one transaction claims, runs the handler and stores the response.
    private func waitingRun(
        _ key: IdempotencyKey,
        _ scope: Scope,
        _ fingerprint: Fingerprint,
        _ timeout: Duration,
        _ handler: (S.Transaction) async throws -> HandlerResponse
    ) async throws -> EngineResponse {
        let original = OriginalHead()
        // An HTTP error the handler threw rolls its writes back to before the handler and is
        // stored in the same step, under the claim held all along: a duplicate waiting on the
        // claim replays it and never runs the handler (a second step would leave the key free
        // between the two, for a duplicate to claim it and run the handler again).
        let receipt = try await operations.perform(
            key: key.value,
            scope: scope,
            fingerprint: fingerprint,
            whenInProgress: .wait(upTo: timeout),
            recovering: { ($0 as? ThrownResponse)?.stored },
            { transaction in try await run(transaction, handler, original) }
        )
        return response(receipt.value, replayed: receipt.isReplay, original: receipt.isReplay ? nil : original.fields)
    }

    /// ``WhileInProgress/conflict``: a committed claim first, so retries see it and get 409.
    private func claimingRun(
        _ key: IdempotencyKey,
        _ scope: Scope,
        _ fingerprint: Fingerprint,
        _ handler: (S.Transaction) async throws -> HandlerResponse
    ) async throws -> EngineResponse {
        // A read first, which waits for no lock: while the first request's handler runs, its
        // transaction holds the claim's row lock (PostgreSQL) or the writer (SQLite), and `begin`
        // would wait for it instead of answering 409. Whether the lease is live is the store's
        // decision, on its clock (the database's on PostgreSQL), never this process's: a claim
        // whose lease has ended (its holder crashed) is left to `begin`, which takes it over.
        switch try await operations.peek(key: key.value, scope: scope, fingerprint: fingerprint) {
        case .inProgress: throw UnraceError(.inProgress, "a request with this key is in progress")
        case .fingerprintMismatch: throw UnraceError(.fingerprintMismatch, "this key was used with a different request")
        case .insert, .takeOver, .completed: break
        }
        switch try await operations.begin(key: key.value, scope: scope, fingerprint: fingerprint) {
        case .acquired(let handle):
            do {
                do {
                    let original = OriginalHead()
                    let stored = try await operations.complete(
                        handle,
                        producing: { transaction in
                            try await run(transaction, handler, original)
                        }
                    )
                    return response(stored, replayed: false, original: original.fields)
                } catch let thrown as ThrownResponse {
                    // The handler's writes rolled back; the key is still ours: store the error response.
                    try await operations.complete(handle, result: thrown.stored)
                    return response(thrown.stored, replayed: false, original: thrown.fields)
                }
            } catch let error as UnraceError where error.code == .fenced {
                // This request's lease ended and another request with the key took it over: its
                // writes rolled back, and the key is the other request's to complete. A retry
                // gets the other's response; until then the key is in progress (409).
                throw UnraceError(.inProgress, "another request with this key took it over", underlying: error)
            } catch {
                // Free the key for a retry, also when this request was cancelled (a detached task
                // is not); if this fails too, the lease's end frees it.
                let operations = operations
                await Task.detached { try? await operations.fail(handle, reason: .retryable) }.value
                throw error
            }
        case .completed(let completed):
            return response(try completed.value(as: StoredResponse.self), replayed: true)
        case .inProgress:
            throw UnraceError(.inProgress, "a request with this key is in progress")
        case .fingerprintMismatch:
            throw UnraceError(.fingerprintMismatch, "this key was used with a different request")
        }
    }

    /// The codes ``respond(to:principal:body:handler:)`` answers as the rules' verdicts (422, 409,
    /// 400; `fenced` from completing a key another request took over): a handler's own error
    /// with one of them is carried past that mapping.
    private static var rulesCodes: Set<UnraceError.Code> {
        [.fingerprintMismatch, .inProgress, .waitTimedOut, .unknownScope, .invalidScope, .fenced]
    }

    /// Runs the handler in `transaction` and captures its response. A response that must not
    /// be stored is thrown as ``Unstored``, and an HTTP error the handler threw as
    /// ``ThrownResponse``: both roll the handler's writes back.
    private func run(
        _ transaction: S.Transaction,
        _ handler: (S.Transaction) async throws -> HandlerResponse,
        _ original: OriginalHead
    ) async throws -> StoredResponse {
        let response: HandlerResponse
        do {
            response = try await handler(transaction)
        } catch is ResponseTooLarge {
            throw Unstored(
                response: .problem(HTTPProblem(.internalError, detail: "the response was too large to store; nothing was saved"))
            )
        } catch let error as UnraceError where Self.rulesCodes.contains(error.code) {
            // Kept apart from the rules' own errors: a handler's `invalid_scope` is not the
            // principal's, nor its `in_progress` this key's. Every other error goes on as it was:
            // a serialization failure or deadlock to the store, which retries the step; a store
            // failing over to the 503 below.
            throw HandlerFailure(error: error)
        }
        original.fields = response.head.headerFields
        let stored = StoredResponse(response.head, body: Data(response.body))
        guard configuration.storedStatuses.contains(response.head.status) else {
            throw Unstored(
                response: EngineResponse(status: response.head.status, headerFields: response.head.headerFields, body: response.body)
            )
        }
        if response.thrown { throw ThrownResponse(stored: stored, fields: response.head.headerFields) }
        return stored
    }

    /// The response to send: the stored one (marked when replayed), or on the first request the
    /// handler's own header fields (`Set-Cookie` too) with the stored body.
    private func response(_ stored: StoredResponse, replayed: Bool, original: HTTPFields? = nil) -> EngineResponse {
        var headers = original ?? stored.head.headerFields
        headers[.contentLength] = nil
        if replayed { headers[.idempotentReplayed] = "true" }
        headers[.idempotencyKeyRetention] = String(operations.configuration.retention.components.seconds)
        return EngineResponse(status: .checked(code: stored.status), headerFields: headers, body: Array(stored.body))
    }
}

/// A response the engine decided on, for an adapter to send.
public struct EngineResponse: Sendable, Hashable {
    /// The status.
    public var status: HTTPResponse.Status
    /// The header fields.
    public var headerFields: HTTPFields
    /// The body.
    public var body: [UInt8]

    /// A response.
    public init(status: HTTPResponse.Status, headerFields: HTTPFields, body: [UInt8]) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }

    /// A problem as an `application/problem+json` response, with `Retry-After` when it asks for
    /// a retry.
    public static func problem(_ problem: HTTPProblem) -> EngineResponse {
        var fields: HTTPFields = [.contentType: HTTPProblem.mediaType]
        if let seconds = problem.retryAfterSeconds { fields[.retryAfter] = String(seconds) }
        return EngineResponse(status: problem.status, headerFields: fields, body: Array(problem.jsonBody()))
    }
}

/// A response that is given to the client but not stored; thrown to roll the step back.
private struct Unstored: Error {
    let response: EngineResponse
}

/// An `UnraceError` the handler threw with one of ``IdempotencyEngine/rulesCodes``, carried past
/// the rules' error mapping.
private struct HandlerFailure: Error {
    let error: UnraceError
}

/// An HTTP error the handler threw, captured for storing after its writes rolled back.
private struct ThrownResponse: Error {
    let stored: StoredResponse
    let fields: HTTPFields
}

/// The first response's own header fields, kept beside the stored copy (which leaves some out).
/// Written once by the handler's step and read after it, in the same task.
private final class OriginalHead: @unchecked Sendable {
    var fields: HTTPFields?
}
