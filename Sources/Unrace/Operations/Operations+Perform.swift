import Foundation
public import UnraceCore

/// The result of an idempotent operation: the value, and whether this call ran it.
public struct Receipt<Value: Sendable>: Sendable {
    /// The operation's result: from the body if this call ran it, else the stored outcome.
    public let value: Value
    /// `true` when the operation had already been completed and this call replayed the stored
    /// outcome without running the body.
    public let isReplay: Bool
    /// The fencing token under which the operation completed.
    public let token: FencingToken
}

extension Receipt: Equatable where Value: Equatable {}

extension Operations {
    /// Runs `body` at most once per acquired claim of (scope, key), however many duplicates
    /// race, and returns its result to every caller.
    ///
    /// The claim is decided **before** `body` runs, in the transaction that also records the
    /// completion: `body`'s writes and the record commit together or not at all. A duplicate — of
    /// a completed key, of a key held under a live lease, or a concurrent one — never runs `body`,
    /// not even to roll it back: it gets the stored result with ``Receipt/isReplay`` set, or waits
    /// per `whenInProgress` (running nothing while it waits). If `body` throws, nothing is written
    /// and the key stays as it was (free for a retry).
    ///
    /// - Parameters:
    ///   - key: the business operation key (``NameRule/operationKey``: 1 to 255 bytes of printable
    ///     UTF-8, compared in NFC), such as `"capture:\(paymentID)"`.
    ///   - scope: the tenant or client the key belongs to.
    ///   - fingerprint: the request's fingerprint; a key reused with another request throws
    ///     ``UnraceError/Code/fingerprintMismatch``.
    ///   - whenInProgress: what to do while another holder (a two-phase `begin`) runs the same key.
    ///   - body: the local effect. Keep external calls out of it: use ``begin(key:scope:fingerprint:)``.
    ///     It must not start another Unrace step (``UnraceError/Code/nestedStep``).
    /// - Throws: ``UnraceError`` for bad input, a mismatch, a replayed terminal failure, an
    ///   in-progress key, or a store failure; or whatever `body` throws. Cancelling the calling
    ///   task rolls the step back (nothing is written) and throws `CancellationError` — except
    ///   on PostgreSQL once the step's `COMMIT` is on its way: then the server may commit, and
    ///   the call throws ``UnraceError/Code/outcomeUnknown`` (a retry replays what committed).
    public func perform<Value: Codable & Sendable>(
        key: String,
        scope: Scope = .default,
        fingerprint: Fingerprint = .none,
        whenInProgress: InProgressPolicy = .wait(upTo: .seconds(30)),
        _ body: (S.Transaction) async throws -> Value
    ) async throws -> Receipt<Value> {
        let claim = try template(key: key, scope: scope, fingerprint: fingerprint)
        let deadline = try waitDeadline(whenInProgress, from: configuration.clock.now())
        return try await telemetry.span("perform") { span in
            let receipt = try await perform(claim, deadline: deadline, recovering: nil, body)
            span.attributes["unrace.replay"] = receipt.isReplay
            return receipt
        }
    }

    /// ``perform(key:scope:fingerprint:whenInProgress:_:)``, where an error of `body` that
    /// `recovering` turns into a value does not end the step: `body`'s writes are rolled back
    /// (``StepSavepoints``) and the operation completes with that value in the same step, under
    /// the claim it held all along — so no duplicate waiting on the claim runs `body` in between.
    /// The idempotency middleware stores a handler's thrown HTTP error this way.
    package func perform<Value: Codable & Sendable>(
        key: String,
        scope: Scope,
        fingerprint: Fingerprint,
        whenInProgress: InProgressPolicy,
        recovering: @escaping @Sendable (any Error) -> Value?,
        _ body: (S.Transaction) async throws -> Value
    ) async throws -> Receipt<Value> {
        let claim = try template(key: key, scope: scope, fingerprint: fingerprint)
        let deadline = try waitDeadline(whenInProgress, from: configuration.clock.now())
        return try await telemetry.span("perform") { span in
            let receipt = try await perform(claim, deadline: deadline, recovering: recovering, body)
            span.attributes["unrace.replay"] = receipt.isReplay
            return receipt
        }
    }

    private func perform<Value: Codable & Sendable>(
        _ claim: ClaimTemplate,
        deadline: Timestamp?,
        recovering: (@Sendable (any Error) -> Value?)?,
        _ body: (S.Transaction) async throws -> Value
    ) async throws -> Receipt<Value> {
        let scope = claim.scope
        let retention = configuration.retention
        while true {
            let step: PerformStep<Value> = try await telemetry.step(store, info("perform", claim.key)) { context in
                let acquired: OperationRecord
                let write: Claimed.Write
                switch try await Claimed.claim(context, claim) {
                case .notAcquired(let decision): return .notAcquired(decision)
                case .acquired(let record, let how, _): (acquired, write) = (record, how)
                }
                let mark = recovering == nil ? nil : try await context.rows.savepoint()
                var value: Value
                do {
                    value = try await body(context.transaction)
                } catch {
                    // A failure recovered into a stored outcome (an HTTP error response) completes
                    // the key: it is not a body failure, which leaves the key free.
                    guard let mark, !(error is CancellationError), let recovered = recovering?(error) else {
                        metrics.bodyFailure(scope: scope)
                        throw error
                    }
                    try await context.rows.rollback(to: mark)
                    value = recovered
                }
                let outcome = try OutcomeCoding.encode(value)
                let record = Completion.success(outcome).apply(to: acquired, now: try await context.rows.now(), retention: retention)
                try await context.rows.saveOperation(record, isNew: write == .insert)
                context.note("→ performed, token \(record.token.value)")
                return .performed(value, record.token, record)
            }
            switch step {
            case .performed(let value, let token, let record):
                if token != .first { logTakeover(record) }
                metrics.claim(token == .first ? .acquired : .takenOver, scope: scope)
                return Receipt(value: value, isReplay: false, token: token)
            case .notAcquired(let decision):
                let receipt: Receipt<Value>?
                do {
                    receipt = try replay(decision, deadline: deadline, now: configuration.clock.now())
                } catch {
                    metrics.claim(decision, scope: scope)
                    throw error
                }
                if let receipt {
                    metrics.claim(decision, scope: scope)
                    return receipt
                }
                try await configuration.clock.sleep(for: configuration.waitPollInterval)
            }
        }
    }

    /// Turns a decision that kept the caller out into a replayed receipt, an error, or `nil`
    /// (keep waiting).
    func replay<Value: Decodable>(_ decision: ClaimDecision, deadline: Timestamp?, now: Timestamp) throws -> Receipt<Value>? {
        switch decision {
        case .completed(let record):
            return Receipt(value: try OutcomeCoding.decodeSuccess(Value.self, from: record), isReplay: true, token: record.token)
        case .fingerprintMismatch:
            throw UnraceError(.fingerprintMismatch, "this operation key was already used with a different request")
        case .inProgress(let holder, let leaseUntil):
            guard let deadline else {
                throw UnraceError(
                    .inProgress,
                    "another holder is running this operation",
                    detail: "holder \(holder), lease until \(leaseUntil)"
                )
            }
            guard now < deadline else {
                throw UnraceError(.waitTimedOut, "waited for another holder's outcome longer than allowed", detail: "holder \(holder)")
            }
            return nil
        case .insert, .takeOver:
            return nil  // the key became free between steps: try again
        }
    }

    func waitDeadline(_ policy: InProgressPolicy, from now: Timestamp) throws -> Timestamp? {
        guard let wait = policy.wait else { return nil }
        guard wait >= .zero, wait <= OperationsConfiguration.waitMaximum else {
            throw UnraceError(.invalidArgument, "a wait must be between 0 and 10 minutes")
        }
        return now + wait
    }
}

/// What one `perform` step did.
enum PerformStep<Value: Sendable>: Sendable {
    case performed(Value, FencingToken, OperationRecord)
    case notAcquired(ClaimDecision)
}

/// How results and failures are stored: JSON, so any process (and a human) can read them back.
enum OutcomeCoding {
    // One encoder and decoder for every call: both are safe to share, and creating them per
    // call showed in profiles.
    private static let encoder = JSONEncoder()
    private static let decoder = JSONDecoder()

    /// The largest stored value (an operation's outcome, a record's value), encoded: 64 MiB.
    static let byteCountMaximum = 64 << 20

    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let bytes: Data
        do {
            bytes = try encoder.encode(value)
        } catch {
            throw UnraceError(.invalidArgument, "the value could not be encoded as JSON", underlying: error)
        }
        guard bytes.count <= byteCountMaximum else {
            throw UnraceError(.invalidArgument, "the value is \(bytes.count) bytes as JSON; the maximum is \(byteCountMaximum)")
        }
        return Array(bytes)
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        do {
            return try decoder.decode(T.self, from: Data(bytes))
        } catch {
            throw UnraceError(
                .outcomeDecodingFailed,
                "the stored outcome could not be decoded as the requested type",
                detail: "\(T.self)",
                underlying: error
            )
        }
    }

    /// The stored success value, or the replayed terminal failure as an error.
    static func decodeSuccess<T: Decodable>(_ type: T.Type, from record: OperationRecord) throws -> T {
        let bytes = record.outcome ?? []
        if record.state == .failed {
            let reason = String(decoding: bytes, as: UTF8.self)
            throw UnraceError(.operationFailed, "this operation already ended in a terminal failure", detail: reason)
        }
        return try decode(T.self, from: bytes)
    }
}
