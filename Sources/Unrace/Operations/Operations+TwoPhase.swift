public import UnraceCore

extension Operations {
    /// Claims a key for a lease: the first phase of work with external effects.
    ///
    /// On ``Claim/acquired(_:)`` the caller holds the key with a fencing token until the lease
    /// ends. If the lease ends before the holder completes (a crash, a long pause), the next
    /// claimer takes over with a larger token and the recovery point, and the old holder is fenced.
    public func begin(key: String, scope: Scope = .default, fingerprint: Fingerprint = .none) async throws -> Claim {
        let request = try request(key: key, scope: scope, fingerprint: fingerprint)
        switch try await store.claim(request) {
        case .acquired(let record):
            logger.debug("operation acquired", metadata: ["scope": "\(scope)", "token": "\(record.token)"])
            return .acquired(OperationHandle(record: record))
        case .notAcquired(.inProgress(let holder, let leaseUntil)):
            return .inProgress(holder: holder, leaseUntil: leaseUntil)
        case .notAcquired(.completed(let record)):
            return .completed(CompletedOperation(record: record))
        case .notAcquired(.fingerprintMismatch):
            return .fingerprintMismatch
        case .notAcquired(.insert), .notAcquired(.takeOver):
            throw UnraceError(.storeFailure, "the store declined a claim it should have granted")
        }
    }

    /// Saves a recovery point (and the holder's local writes, in the same transaction), and
    /// extends the lease by the configured duration.
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
        let now = configuration.clock.now()
        let record = try await store.write(
            .checkpoint(recoveryPoint: bytes, leaseUntil: now + configuration.lease),
            scope: handle.scope, key: handle.key, token: handle.token, now: now,
            retention: configuration.retention, body
        )
        return OperationHandle(record: record)
    }

    /// Completes the operation with a result that every duplicate will be given, committing
    /// `body`'s local writes in the same transaction.
    /// - Throws: ``UnraceError/Code/fenced`` if the holder lost the key; `body`'s writes roll back.
    public func complete(
        _ handle: OperationHandle,
        result: some Encodable,
        _ body: (S.Transaction) async throws -> Void = { _ in }
    ) async throws {
        let bytes = try OutcomeCoding.encode(result)
        try await finish(handle, .success(bytes), body)
    }

    /// Ends the operation in failure: a terminal failure is stored and replayed; a retryable one
    /// releases the key for the next claim.
    /// - Throws: ``UnraceError/Code/fenced`` if the holder lost the key.
    public func fail(
        _ handle: OperationHandle,
        reason: FailureReason,
        _ body: (S.Transaction) async throws -> Void = { _ in }
    ) async throws {
        switch reason {
        case .terminal(let text): try await finish(handle, .failure(Array(text.utf8)), body)
        case .retryable: try await finish(handle, .retryable, body)
        }
    }

    private func finish(_ handle: OperationHandle, _ completion: Completion, _ body: (S.Transaction) async throws -> Void) async throws {
        _ = try await store.write(
            .complete(completion), scope: handle.scope, key: handle.key, token: handle.token,
            now: configuration.clock.now(), retention: configuration.retention, body
        )
    }

    /// Whether the operation has been logically completed, is running, or never ran.
    public func status(of key: String, scope: Scope = .default) async throws -> OperationStatus {
        let key = try OperationKey(key)
        guard let record = try await store.record(scope: scope, key: key) else { return .notStarted }
        switch record.state {
        case .succeeded, .failed: return .completed(CompletedOperation(record: record))
        case .released: return .released
        case .running: return .inProgress(holder: record.holder, leaseUntil: record.leaseUntil)
        }
    }

    /// The largest batch ``purgeExpired(limit:)`` deletes in one call: 10,000 records.
    public static var purgeLimitMaximum: Int { 10_000 }

    /// Deletes at most `limit` completed records whose retention has ended. Call it periodically;
    /// each call is one short transaction.
    /// - Returns: how many records were deleted (fewer than `limit` means none are left).
    public func purgeExpired(limit: Int = 1_000) async throws -> Int {
        guard (1...Self.purgeLimitMaximum).contains(limit) else {
            throw UnraceError(.invalidArgument, "purge limit must be between 1 and \(Self.purgeLimitMaximum)")
        }
        return try await store.purgeExpired(now: configuration.clock.now(), limit: limit)
    }
}
