public import UnraceCore

extension Operations {
    /// Claims a key for a lease: the first phase of work with external effects.
    ///
    /// On ``Claim/acquired(_:)`` the caller holds the key with a fencing token until the lease
    /// ends. If the lease ends before the holder completes (a crash, a long pause), the next
    /// claimer takes over with a larger token and the recovery point, and the old holder is fenced.
    /// The lease is decided on the store's clock (the database's, on PostgreSQL).
    public func begin(key: String, scope: Scope = .default, fingerprint: Fingerprint = .none) async throws -> Claim {
        let claim = try template(key: key, scope: scope, fingerprint: fingerprint)
        let claimed = try await telemetry.step(store, info("claim", claim.key)) { context in
            let claimed = try await Claimed.claim(context, claim)
            if case .acquired(let record, let write, let reserved) = claimed, !reserved {
                try await context.rows.saveOperation(record, isNew: write == .insert)
            }
            return claimed
        }
        if case .notAcquired(let decision) = claimed { metrics.claim(decision, scope: scope) }
        switch claimed {
        case .acquired(let record, _, _):
            if record.token != .first {
                logTakeover(record)
            }
            metrics.claim(record.token == .first ? .acquired : .takenOver, scope: scope)
            return .acquired(OperationHandle(record: record))
        case .notAcquired(.inProgress(let holder, let leaseUntil)):
            return .inProgress(holder: holder, leaseUntil: leaseUntil)
        case .notAcquired(.completed(let record)):
            return .completed(CompletedOperation(record: record))
        case .notAcquired(.fingerprintMismatch):
            return .fingerprintMismatch
        case .notAcquired(.insert), .notAcquired(.takeOver):
            throw UnraceError(.storeFailure, "a claim decided to acquire but did not")
        }
    }

    /// Saves a recovery point (and the holder's local writes, in the same transaction), and
    /// extends the lease by the configured duration from the time of the checkpoint.
    ///
    /// - Returns: the handle with its new lease end.
    /// - Throws: ``UnraceError/Code/fenced`` if the holder lost the key; `body`'s writes roll back.
    @discardableResult
    public func checkpoint(
        _ handle: OperationHandle,
        recoveryPoint: some Encodable,
        _ body: (S.Transaction) async throws -> Void = { _ in }
    ) async throws -> OperationHandle {
        let bytes = try OutcomeCoding.encode(recoveryPoint)
        let record = try await holderWrite(handle, .checkpoint(recoveryPoint: bytes, lease: configuration.lease), "checkpoint", body)
        return OperationHandle(record: record)
    }

    /// Completes the operation with a result that every duplicate will be given, committing
    /// `body`'s local writes in the same transaction.
    ///
    /// Idempotent for its holder: sent again after the holder completed the operation (its first
    /// attempt committed, though the call failed with ``UnraceError/Code/outcomeUnknown``), it
    /// returns at once — `body` does not run again, and the first attempt's result stands.
    /// - Throws: ``UnraceError/Code/fenced`` if the holder lost the key, or ended the operation
    ///   another way (failed it); `body`'s writes roll back.
    public func complete(
        _ handle: OperationHandle,
        result: some Encodable,
        _ body: (S.Transaction) async throws -> Void = { _ in }
    ) async throws {
        let bytes = try OutcomeCoding.encode(result)
        _ = try await holderWrite(handle, .complete(.success(bytes)), "complete", body)
    }

    /// Completes the operation with the value `body` produces in the completing transaction:
    /// the fence is checked first, then `body` runs, then its value is stored as the result that
    /// every duplicate is given; `body`'s writes and the record commit together.
    ///
    /// Use it when the result only exists once the local work has run (an HTTP response, say).
    /// Sent again after the holder completed the operation, it returns the stored result without
    /// running `body`.
    /// - Returns: what `body` returned (the stored result, for a call sent again).
    /// - Throws: ``UnraceError/Code/fenced`` if the holder lost the key (`body` does not run);
    ///   or whatever `body` throws, in which case nothing is written and the key stays held.
    public func complete<Value: Codable & Sendable>(
        _ handle: OperationHandle,
        producing body: (S.Transaction) async throws -> Value
    ) async throws -> Value {
        let retention = configuration.retention
        let repeated: (OperationRecord) throws -> Value? = { record in
            guard record.state == .succeeded, let outcome = record.outcome else { return nil }
            return try OutcomeCoding.decode(Value.self, from: outcome)
        }
        return try await fencedStep(handle, "complete", repeated: repeated) { context, current in
            let value = try await body(context.transaction)
            let write = HolderWrite.complete(.success(try OutcomeCoding.encode(value)))
            let record = write.apply(to: current, now: try await context.rows.now(), retention: retention)
            try await context.rows.saveOperation(record, isNew: false)
            return value
        }
    }

    /// Ends the operation in failure: a terminal failure is stored and replayed; a retryable one
    /// releases the key for the next claim. Sent again after the holder ended it the same way
    /// (and before another claim took the released key), it returns at once without running `body`.
    /// - Throws: ``UnraceError/Code/fenced`` if the holder lost the key, or ended the operation
    ///   another way; ``UnraceError/Code/invalidArgument`` for a terminal reason over
    ///   ``OperationsConfiguration/outcomeByteCountMaximum`` bytes (nothing written).
    public func fail(
        _ handle: OperationHandle,
        reason: FailureReason,
        _ body: (S.Transaction) async throws -> Void = { _ in }
    ) async throws {
        switch reason {
        case .terminal(let text):
            // Stored and replayed as an outcome is: bounded as one, refused before anything is written.
            guard text.utf8.count <= OutcomeCoding.byteCountMaximum else {
                throw UnraceError(
                    .invalidArgument,
                    "a terminal failure's reason is \(text.utf8.count) bytes; the maximum is \(OutcomeCoding.byteCountMaximum)"
                )
            }
            _ = try await holderWrite(handle, .complete(.failure(Array(text.utf8))), "fail", body)
        case .retryable: _ = try await holderWrite(handle, .complete(.retryable), "fail", body)
        }
    }

    /// A write only the key's current holder may make: checks the fence inside the step, before
    /// `body` runs, so a fenced holder's writes never commit.
    private func holderWrite(
        _ handle: OperationHandle,
        _ write: HolderWrite,
        _ name: StaticString,
        _ body: (S.Transaction) async throws -> Void
    ) async throws -> OperationRecord {
        let retention = configuration.retention
        // Sent again after the holder ended the operation this same way (its first attempt
        // committed, then the call reported outcome_unknown): done already, the body not run again.
        let repeated: (OperationRecord) -> OperationRecord? = { record in
            guard case .complete(let completion) = write, record.state == completion.state else { return nil }
            return record
        }
        return try await fencedStep(handle, name, repeated: repeated) { context, current in
            try await body(context.transaction)
            let record = write.apply(to: current, now: try await context.rows.now(), retention: retention)
            try await context.rows.saveOperation(record, isNew: false)
            return record
        }
    }

    /// Runs `work` in a step only if `handle` still holds its key (the fence is checked, under
    /// the record's lock, before `work` runs), and logs a refused, fenced holder.
    private func fencedStep<T: Sendable>(
        _ handle: OperationHandle,
        _ name: StaticString,
        repeated: (OperationRecord) throws -> T? = { _ in nil },
        _ work: (StepContext<S.Transaction>, OperationRecord) async throws -> T
    ) async throws -> T {
        // Set only when the fence refused the holder and another holder took the key: a `fenced`
        // error the body throws (a queue delivery acked in the same transaction) is not a takeover,
        // nor is the holder's own record already ended (its first `complete` committed, then the
        // call was sent again). Only a takeover is logged and counted.
        var takenOver = false
        do {
            return try await telemetry.step(store, info(name, handle.key)) { context in
                let current = try await context.rows.lockOperation(scope: handle.scope, key: handle.key)
                let admitted = Fence.admits(current, token: handle.token, createdAt: handle.createdAt)
                guard admitted || context.disabledGuards.contains(.fencing), let current else {
                    let endedByHolder = Fence.endedByHolder(current, token: handle.token, createdAt: handle.createdAt)
                    if endedByHolder, let current, let done = try repeated(current) { return done }
                    takenOver = !endedByHolder
                    throw Fence.error(token: handle.token, current: current, createdAt: handle.createdAt)
                }
                return try await work(context, current)
            }
        } catch let error as UnraceError where error.code == .fenced && takenOver {
            logger.warning(
                "fenced holder write refused: the key was taken over",
                metadata: telemetry.keyMetadata(scope: handle.scope.rawValue, key: handle.key.rawValue).merging(
                    ["scope": "\(metrics.scopeLabel(handle.scope))", "token": "\(handle.token.value)", "step": "\(name)"]
                ) { $1 }
            )
            metrics.fenced(scope: handle.scope)
            throw error
        }
    }

    /// Logs a claim that took a key over from a holder whose lease ended.
    func logTakeover(_ record: OperationRecord) {
        logger.notice(
            "operation taken over: claimed again after its holder's lease ended or a retryable failure released it",
            metadata: telemetry.keyMetadata(scope: record.scope.rawValue, key: record.key.rawValue).merging(
                ["scope": "\(metrics.scopeLabel(record.scope))", "token": "\(record.token.value)"]
            ) { $1 }
        )
    }

    /// The decision a claim of this key with `fingerprint` would get now, read without locking
    /// or writing anything — a read that waits for no lock (the key may be locked by a holder
    /// completing it). The lease is decided as a claim decides it: on the store's clock (the
    /// database's on PostgreSQL). The answer may be out of date as soon as it returns; it is for
    /// answering early (an HTTP 409 while a request is in flight), never for deciding to run.
    /// - Throws: ``UnraceError/Code/invalidKey``, ``UnraceError/Code/unknownScope``, store errors.
    public func peek(key: String, scope: Scope = .default, fingerprint: Fingerprint = .none) async throws -> ClaimDecision {
        let claim = try template(key: key, scope: scope, fingerprint: fingerprint)
        return try await telemetry.step(store, info("peek", claim.key, isReadOnly: true)) { context in
            let existing = try await context.rows.operation(scope: claim.scope, key: claim.key)
            return ClaimDecision.decide(existing: existing, request: claim.request(at: try await context.rows.now()))
        }
    }

    /// Whether the operation has been logically completed, is running, or never ran.
    /// - Throws: ``UnraceError/Code/invalidKey``, ``UnraceError/Code/unknownScope`` (a scope
    ///   outside ``OperationsConfiguration/allowedScopes``, as every call that names a scope),
    ///   store errors.
    public func status(of key: String, scope: Scope = .default) async throws -> OperationStatus {
        let key = try OperationKey(key)
        try checkScope(scope)
        let record = try await telemetry.step(store, info("status", key, isReadOnly: true)) { context in
            try await context.rows.operation(scope: scope, key: key)
        }
        guard let record else { return .notStarted }
        switch record.state {
        case .succeeded, .failed: return .completed(CompletedOperation(record: record))
        case .released: return .released
        case .running: return .inProgress(holder: record.holder, leaseUntil: record.leaseUntil)
        }
    }

    /// The largest batch ``purgeExpired(scope:limit:)`` deletes in one call: 10,000 records.
    public static var purgeLimitMaximum: Int { 10_000 }

    /// Deletes at most `limit` expired records of one scope: completed and released operations
    /// whose retention has ended, and running ones abandoned for longer than the retention after
    /// their lease. A running record with a live lease is never purged. Call it periodically;
    /// each call is one short transaction.
    /// - Returns: how many records were deleted (fewer than `limit` means none are left).
    public func purgeExpired(scope: Scope = .default, limit: Int = 1_000) async throws -> Int {
        try Self.checkPurgeLimit(limit)
        try checkScope(scope)
        return try await purge(scope, limit: limit)
    }

    /// Deletes at most `limit` expired records of **every** scope in the store, earliest expiry
    /// first — also scopes no caller can list, such as the idempotency middleware's one scope per
    /// principal. The same rule as ``purgeExpired(scope:limit:)``: a running record with a live
    /// lease is never purged. Scopes outside ``OperationsConfiguration/allowedScopes`` are purged
    /// too: retention is the store's, whoever wrote the records.
    /// - Returns: how many records were deleted (fewer than `limit` means none are left).
    public func purgeExpiredInEveryScope(limit: Int = 1_000) async throws -> Int {
        try await purge(nil, limit: limit)
    }

    private static func checkPurgeLimit(_ limit: Int) throws {
        guard (1...purgeLimitMaximum).contains(limit) else {
            throw UnraceError(.invalidArgument, "purge limit must be between 1 and \(purgeLimitMaximum)")
        }
    }

    private func purge(_ scope: Scope?, limit: Int) async throws -> Int {
        try Self.checkPurgeLimit(limit)
        return try await telemetry.step(store, StepInfo("purge", scope?.rawValue ?? "every scope", clock: configuration.clock)) { context in
            let now = try await context.rows.now()
            let expired = try await context.rows.expiredOperations(scope: scope, at: now, limit: limit).filter { $0.isExpired(at: now) }
            for (scope, records) in Dictionary(grouping: expired, by: \.scope).sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                try await context.rows.deleteOperations(scope: scope, keys: records.map(\.key))
            }
            return expired.count
        }
    }
}
