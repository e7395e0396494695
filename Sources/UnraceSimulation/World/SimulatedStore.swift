public import Unrace

/// The ``Store`` simulated actors use: the world's ``MemoryStore``, with every call made one
/// scheduling point and subject to the run's faults.
///
/// Before a call runs, the caller may be delayed (latency, a pause), crash, or get a transient
/// `store_unavailable` with nothing written; after it commits, the reply may be lost (the
/// caller sees `store_unavailable` although the step happened). The step itself runs atomically
/// on the memory store: the same reference semantics as SQLite and PostgreSQL.
public struct SimulatedStore: Store {
    /// Business writes go through the memory store's transaction.
    public typealias Transaction = MemoryTransaction

    unowned(unsafe) let world: World
    var memory: MemoryStore { world.memory }

    func step<T>(_ label: @autoclosure () -> String, _ body: () async throws -> T) async throws -> T {
        try await world.point(0, "store.\(label())")
        let faults = world.faults
        if faults.transientPerMille > 0, world.choices.chance(perMille: faults.transientPerMille) {
            world.annotate("✗ unavailable")
            throw UnraceError(.storeUnavailable, "simulated: the store is unavailable")
        }
        let result = try await body()
        if faults.lostReplyPerMille > 0, world.choices.chance(perMille: faults.lostReplyPerMille) {
            world.annotate("✓ committed, reply lost")
            throw UnraceError(.storeUnavailable, "simulated: the step committed but its reply was lost")
        }
        return result
    }

    // MARK: Operations

    /// See ``Store/performOnce(_:retention:_:)``.
    public func performOnce(
        _ request: ClaimRequest, retention: Duration, _ body: (MemoryTransaction, FencingToken) async throws -> Completion
    ) async throws -> PerformStep {
        try await step("performOnce \(request.key)") {
            let step = try await memory.performOnce(request, retention: retention, body)
            world.annotate(Self.describe(step))
            return step
        }
    }

    /// See ``Store/claim(_:)``.
    public func claim(_ request: ClaimRequest) async throws -> ClaimStep {
        try await step("claim \(request.key)") {
            let step = try await memory.claim(request)
            switch step {
            case .acquired(let record): world.annotate("→ acquired, token \(record.token.value)")
            case .notAcquired(let decision): world.annotate("→ \(Self.describe(decision))")
            }
            return step
        }
    }

    /// See ``Store/write(_:scope:key:token:now:retention:_:)``.
    public func write(
        _ write: HolderWrite, scope: Scope, key: OperationKey, token: FencingToken, now: Timestamp, retention: Duration,
        _ body: (MemoryTransaction) async throws -> Void
    ) async throws -> OperationRecord {
        let name = if case .checkpoint = write { "checkpoint" } else { "complete" }
        return try await step("\(name) \(key) token \(token.value)") {
            do {
                return try await memory.write(write, scope: scope, key: key, token: token, now: now, retention: retention, body)
            } catch let error as UnraceError where error.code == .fenced {
                world.annotate("✗ fenced")
                throw error
            }
        }
    }

    /// See ``Store/record(scope:key:)``.
    public func record(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await step("record \(key)") { try await memory.record(scope: scope, key: key) }
    }

    /// See ``Store/purgeExpired(now:limit:)``.
    public func purgeExpired(now: Timestamp, limit: Int) async throws -> Int {
        try await step("purgeExpired") { try await memory.purgeExpired(now: now, limit: limit) }
    }

    /// See ``Store/withTransaction(_:)``.
    public func withTransaction<T: Sendable>(_ body: (MemoryTransaction) async throws -> T) async throws -> T {
        try await step("transaction") { try await memory.withTransaction(body) }
    }

    // MARK: Inbox

    /// See ``Store/receive(_:parkingLimit:now:_:)``.
    public func receive(
        _ event: InboxEvent, parkingLimit: Int, now: Timestamp,
        _ handler: (MemoryTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        try await step("receive \(event.stream)#\(event.sequence) \(event.type)") {
            let outcome = try await memory.receive(event, parkingLimit: parkingLimit, now: now, handler)
            world.annotate("→ \(outcome)")
            return outcome
        }
    }

    /// See ``Store/skipGap(stream:now:_:)``.
    public func skipGap(
        stream: String, now: Timestamp, _ handler: (MemoryTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        try await step("skipGap \(stream)") { try await memory.skipGap(stream: stream, now: now, handler) }
    }

    /// See ``Store/inboxGaps(openedBefore:limit:)``.
    public func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        try await step("inboxGaps") { try await memory.inboxGaps(openedBefore: cutoff, limit: limit) }
    }

    /// See ``Store/inboxHead(stream:)``.
    public func inboxHead(stream: String) async throws -> Int64 {
        try await step("inboxHead \(stream)") { try await memory.inboxHead(stream: stream) }
    }

    // MARK: Versioned records, counters, quotas, holds

    /// See ``Store/readRecord(collection:id:)``.
    public func readRecord(collection: String, id: String) async throws -> (value: [UInt8], version: Int64)? {
        try await step("readRecord \(collection)/\(id)") {
            let record = try await memory.readRecord(collection: collection, id: id)
            world.annotate("→ version \(record?.version ?? 0)")
            return record
        }
    }

    /// See ``Store/createRecord(collection:id:value:now:)``.
    public func createRecord(collection: String, id: String, value: [UInt8], now: Timestamp) async throws -> Int64? {
        try await step("createRecord \(collection)/\(id)") {
            try await memory.createRecord(collection: collection, id: id, value: value, now: now)
        }
    }

    /// See ``Store/writeRecord(collection:id:value:expectedVersion:now:)``.
    public func writeRecord(
        collection: String, id: String, value: [UInt8], expectedVersion: Int64, now: Timestamp
    ) async throws -> Int64? {
        try await step("writeRecord \(collection)/\(id) if version \(expectedVersion)") {
            let version = try await memory.writeRecord(
                collection: collection, id: id, value: value, expectedVersion: expectedVersion, now: now
            )
            world.annotate(version.map { "→ version \($0)" } ?? "✗ version conflict")
            return version
        }
    }

    /// See ``Store/createCounter(name:value:floor:ceiling:)``.
    public func createCounter(name: String, value: Int64, floor: Int64, ceiling: Int64) async throws -> Bool {
        try await step("createCounter \(name)") {
            try await memory.createCounter(name: name, value: value, floor: floor, ceiling: ceiling)
        }
    }

    /// See ``Store/adjustCounter(name:by:)``.
    public func adjustCounter(name: String, by delta: Int64) async throws -> CounterStep {
        try await step("adjustCounter \(name) by \(delta)") {
            let step = try await memory.adjustCounter(name: name, by: delta)
            world.annotate("→ \(step)")
            return step
        }
    }

    /// See ``Store/consumeQuota(name:units:limit:windowStart:)``.
    public func consumeQuota(name: String, units: Int64, limit: Int64, windowStart: Timestamp) async throws -> QuotaStep {
        try await step("consumeQuota \(name) \(units)/\(limit)") {
            let step = try await memory.consumeQuota(name: name, units: units, limit: limit, windowStart: windowStart)
            world.annotate("→ \(step)")
            return step
        }
    }

    /// See ``Store/createResource(name:capacity:)``.
    public func createResource(name: String, capacity: Int64) async throws -> Bool {
        try await step("createResource \(name)") { try await memory.createResource(name: name, capacity: capacity) }
    }

    /// See ``Store/hold(resource:key:units:now:expiresAt:)``.
    public func hold(resource: String, key: String, units: Int64, now: Timestamp, expiresAt: Timestamp) async throws -> HoldStep {
        try await step("hold \(resource) for \(key)") {
            let step = try await memory.hold(resource: resource, key: key, units: units, now: now, expiresAt: expiresAt)
            world.annotate("→ \(step)")
            return step
        }
    }

    /// See ``Store/settleHold(key:confirm:now:)``.
    public func settleHold(key: String, confirm: Bool, now: Timestamp) async throws -> HoldStep {
        try await step("\(confirm ? "confirm" : "release") \(key)") {
            let step = try await memory.settleHold(key: key, confirm: confirm, now: now)
            world.annotate("→ \(step)")
            return step
        }
    }

    // MARK: Ledger

    /// See ``Store/createAccounts(_:now:)``.
    public func createAccounts(_ accounts: [Account], now: Timestamp) async throws -> [AccountResult] {
        try await step("createAccounts \(accounts.count)") { try await memory.createAccounts(accounts, now: now) }
    }

    /// See ``Store/submitTransfers(_:now:)``.
    public func submitTransfers(_ batch: [Transfer], now: Timestamp) async throws -> [TransferResult] {
        try await step("submitTransfers \(batch.count)") { try await memory.submitTransfers(batch, now: now) }
    }

    /// See ``Store/lookupAccounts(_:)``.
    public func lookupAccounts(_ ids: [String]) async throws -> [Account] {
        try await step("lookupAccounts \(ids.count)") { try await memory.lookupAccounts(ids) }
    }

    /// See ``Store/ledgerTotals()``.
    public func ledgerTotals() async throws -> LedgerTotals {
        try await step("ledgerTotals") { try await memory.ledgerTotals() }
    }

    // MARK: Lifecycles

    /// See ``Store/transition(_:name:entity:event:now:_:)``.
    public func transition(
        _ lifecycle: Lifecycle, name: String, entity: String, event: String, now: Timestamp,
        _ handler: (MemoryTransaction, Lifecycle.Decision) async throws -> Void
    ) async throws -> Lifecycle.Decision {
        try await step("transition \(entity) on \(event)") {
            try await memory.transition(lifecycle, name: name, entity: entity, event: event, now: now, handler)
        }
    }

    static func describe(_ step: PerformStep) -> String {
        switch step {
        case .performed(let record): "→ performed, token \(record.token.value)"
        case .notAcquired(let decision): "→ \(describe(decision))"
        }
    }

    static func describe(_ decision: ClaimDecision) -> String {
        switch decision {
        case .completed: "already completed"
        case .inProgress(let holder, _): "in progress (\(holder))"
        case .fingerprintMismatch: "fingerprint mismatch"
        case .insert, .takeOver: "free"
        }
    }
}
