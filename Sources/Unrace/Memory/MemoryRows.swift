import UnraceCore

/// ``StoreRows`` over a ``MemoryTransaction``: dictionaries, and a plain read is a lock because
/// memory steps run one at a time.
struct MemoryRows: StoreRows {
    let tx: MemoryTransaction
    let time: Timestamp

    func now() async throws -> Timestamp { time }

    private func read<T>(_ body: (inout MemoryStore.State) throws -> T) rethrows -> T {
        try tx.working.withLock { try body(&$0) }
    }

    private static func join(_ a: String, _ b: String) -> String { "\(a)\u{0}\(b)" }

    // MARK: Operations

    func operation(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        read { $0.operations[.init(scope: scope, key: key)] }
    }

    func lockOperation(_ claim: ClaimTemplate) async throws -> OperationLock {
        read { $0.operations[.init(scope: claim.scope, key: claim.key)].map(OperationLock.existing) ?? .absent }
    }

    func lockOperation(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await operation(scope: scope, key: key)
    }

    func saveOperation(_ record: OperationRecord, isNew: Bool) async throws {
        read { $0.operations[.init(scope: record.scope, key: record.key)] = record }
    }

    func expiredOperations(scope: Scope?, at now: Timestamp, limit: Int) async throws -> [OperationRecord] {
        read { state in
            Array(
                state.operations.values
                    .filter { (scope == nil || $0.scope == scope) && ($0.expiresAt.map { $0 <= now } ?? false) }
                    .sorted { ($0.expiresAt!, $0.scope.rawValue, $0.key.rawValue) < ($1.expiresAt!, $1.scope.rawValue, $1.key.rawValue) }
                    .prefix(limit)
            )
        }
    }

    func deleteOperations(scope: Scope, keys: [OperationKey]) async throws {
        read { state in for key in keys { state.operations[.init(scope: scope, key: key)] = nil } }
    }

    // MARK: Versioned records

    func record(collection: String, id: String, lock: Bool) async throws -> StoredRecord? {
        read { $0.records[Self.join(collection, id)] }
    }

    func saveRecord(_ record: StoredRecord, isNew: Bool) async throws {
        read { $0.records[Self.join(record.collection, record.id)] = record }
    }

    // MARK: Counters and quotas

    func counter(name: String, lock: Bool) async throws -> CounterState? { read { $0.counters[name] } }

    func saveCounter(_ counter: CounterState, isNew: Bool) async throws { read { $0.counters[counter.name] = counter } }

    func quota(name: String, lock: Bool) async throws -> QuotaState? { read { $0.quotas[name] } }

    func saveQuota(_ quota: QuotaState, isNew: Bool) async throws { read { $0.quotas[quota.name] = quota } }

    // MARK: Holds

    func resource(name: String, lock: Bool) async throws -> ResourceState? { read { $0.resources[name] } }

    func saveResource(_ resource: ResourceState, isNew: Bool) async throws { read { $0.resources[resource.name] = resource } }

    func hold(key: String, lock: Bool) async throws -> Hold? { read { $0.holds[key] } }

    func expiredHolds(resource: String, at now: Timestamp) async throws -> [Hold] {
        read { state in
            state.holds.values.filter { $0.resource == resource && $0.state == .held && $0.expiresAt <= now }.sorted { $0.key < $1.key }
        }
    }

    func resourcesWithExpiredHolds(at now: Timestamp, limit: Int) async throws -> [String] {
        read { state in
            Array(Set(state.holds.values.filter { $0.state == .held && $0.expiresAt <= now }.map(\.resource)).sorted().prefix(limit))
        }
    }

    func saveHold(_ hold: Hold, isNew: Bool) async throws { read { $0.holds[hold.key] = hold } }

    // MARK: Ledger

    func accounts(_ ids: [String], lock: Bool) async throws -> [String: Account] {
        read { state in
            var found: [String: Account] = [:]
            for id in ids { if let account = state.accounts[id] { found[id] = account } }
            return found
        }
    }

    func insertAccounts(_ accounts: [Account], now: Timestamp) async throws {
        read { state in for account in accounts { state.accounts[account.id] = account } }
    }

    func saveBalances(_ accounts: [Account]) async throws {
        read { state in for account in accounts { state.accounts[account.id] = account } }
    }

    func transfers(_ ids: [String]) async throws -> (stored: [String: StoredTransfer], failed: Set<String>) {
        read { state in
            var stored: [String: StoredTransfer] = [:]
            var failed: Set<String> = []
            for id in ids {
                if let transfer = state.transfers[id] { stored[id] = transfer }
                if state.failedTransfers[id] != nil { failed.insert(id) }
            }
            return (stored, failed)
        }
    }

    func expiredPendingTransfers(at now: Timestamp, touching accounts: [String]?, limit: Int) async throws -> [StoredTransfer] {
        read { state in
            let touching = accounts.map(Set.init)
            return Array(
                state.pendingTransfers.compactMap { state.transfers[$0] }
                    .filter { pending in
                        guard pending.state == .pending, let expiresAt = pending.expiresAt, expiresAt <= now else { return false }
                        guard let touching else { return true }
                        return touching.contains(pending.transfer.debitAccount) || touching.contains(pending.transfer.creditAccount)
                    }
                    .sorted { ($0.expiresAt!, $0.transfer.id) < ($1.expiresAt!, $1.transfer.id) }
                    .prefix(limit)
            )
        }
    }

    func insertTransfers(_ transfers: [StoredTransfer]) async throws {
        read { state in
            for transfer in transfers {
                state.transfers[transfer.transfer.id] = transfer
                if transfer.state == .pending { state.pendingTransfers.insert(transfer.transfer.id) }
            }
        }
    }

    func saveTransferStates(_ transfers: [StoredTransfer]) async throws {
        read { state in
            for transfer in transfers {
                state.transfers[transfer.transfer.id]?.state = transfer.state
                if transfer.state != .pending { state.pendingTransfers.remove(transfer.transfer.id) }
            }
        }
    }

    func insertTransferFailures(_ failures: [(id: String, code: String)], now: Timestamp) async throws {
        read { state in for failure in failures where state.failedTransfers[failure.id] == nil { state.failedTransfers[failure.id] = failure.code } }
    }

    func ledgerTotals() async throws -> LedgerTotals {
        read { state in state.accounts.values.reduce(LedgerTotals.zero) { $0.adding($1) } }
    }

    // MARK: Inbox

    private static func position(_ stream: String, _ sequence: Int64) -> String { "\(stream)\u{0}\(sequence)" }

    func lockStream(_ stream: String, eventID: String) async throws -> (head: StreamHead, stored: InboxPosition?) {
        read { state in
            let head = state.streams[stream] ?? StreamHead(stream: stream, head: 0, parked: 0, gapSince: nil)
            let stored = state.events[eventID].map { InboxPosition(stream: $0.event.stream, sequence: $0.event.sequence) }
            return (head, stored)
        }
    }

    func isPositionTaken(stream: String, sequence: Int64) async throws -> Bool {
        read { $0.positions[Self.position(stream, sequence)] != nil }
    }

    func insertInboxEvent(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        try read { state in
            let position = Self.position(event.stream, event.sequence)
            guard state.events[event.id] == nil, state.positions[position] == nil else {
                throw UnraceError(.constraintViolation, "an inbox event with this id or position exists")
            }
            state.events[event.id] = MemoryStore.StoredEvent(event: event, status: status, reason: reason)
            state.positions[position] = event.id
        }
    }

    func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws {
        try await insertInboxEvent(event, status: status, reason: reason, now: now)
        try await saveStream(stream)
    }

    func setInboxEventStatus(_ event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws {
        read { state in
            state.events[event.id]?.status = status
            state.events[event.id]?.reason = reason
        }
    }

    func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent? {
        read { state in
            guard let id = state.positions[Self.position(stream, sequence)], let stored = state.events[id], stored.status == .parked
            else { return nil }
            return stored.event
        }
    }

    func lowestParkedSequence(stream: String) async throws -> Int64? {
        read { state in state.events.values.filter { $0.event.stream == stream && $0.status == .parked }.map(\.event.sequence).min() }
    }

    func saveStream(_ head: StreamHead) async throws { read { $0.streams[head.stream] = head } }

    func streamHead(_ stream: String) async throws -> Int64 { read { $0.streams[stream]?.head ?? 0 } }

    func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        read { state in
            Array(
                state.streams.values
                    .compactMap { head -> InboxGap? in
                        guard head.parked > 0, let since = head.gapSince, since <= cutoff else { return nil }
                        return InboxGap(stream: head.stream, head: head.head, parked: head.parked, since: since)
                    }
                    .sorted { ($0.since, $0.stream) < ($1.since, $1.stream) }
                    .prefix(limit)
            )
        }
    }

    // MARK: Queues

    func queueMessages(queue: String, ids: [String], lock: Bool) async throws -> [String: QueueMessage] {
        read { state in
            var found: [String: QueueMessage] = [:]
            for id in ids { if let message = state.queueMessages[Self.join(queue, id)] { found[id] = message } }
            return found
        }
    }

    func insertQueueMessage(_ message: QueueMessage) async throws {
        try read { state in
            let key = Self.join(message.queue, message.id)
            guard state.queueMessages[key] == nil else {
                throw UnraceError(.constraintViolation, "a queue message with this id exists")
            }
            state.queuePosition += 1
            var message = message
            message.position = state.queuePosition
            state.queueMessages[key] = message
        }
    }

    func nextQueueSequence(queue: String, key: String) async throws -> Int64 {
        read { state in
            let next = state.queueSequences[Self.join(queue, key), default: 0] + 1
            state.queueSequences[Self.join(queue, key)] = next
            return next
        }
    }

    func leasableQueueMessages(queue: String, at now: Timestamp, limit: Int) async throws -> [QueueMessage] {
        read { state in
            Array(
                state.queueMessages.values
                    .filter { $0.queue == queue && ($0.state == .ready || $0.state == .leased) && $0.visibleAt <= now }
                    .sorted { ($0.visibleAt, $0.position) < ($1.visibleAt, $1.position) }
                    .prefix(limit)
            )
        }
    }

    func saveQueueMessage(_ message: QueueMessage) async throws {
        read { $0.queueMessages[Self.join(message.queue, message.id)] = message }
    }

    func queueMessages(queue: String, state wanted: QueueMessageState, completedBefore: Timestamp?, limit: Int) async throws -> [QueueMessage] {
        read { state in
            Array(
                state.queueMessages.values
                    .filter { message in
                        message.queue == queue && message.state == wanted
                            && (completedBefore.map { cutoff in message.completedAt.map { $0 <= cutoff } ?? false } ?? true)
                    }
                    .sorted { ($0.completedAt ?? .init(milliseconds: .min), $0.position) < ($1.completedAt ?? .init(milliseconds: .min), $1.position) }
                    .prefix(limit)
            )
        }
    }

    func deleteCompletedQueueMessages(queue: String, positions: [Int64]) async throws {
        let positions = Set(positions)
        read { state in
            state.queueMessages = state.queueMessages.filter { !($0.value.queue == queue && $0.value.state == .done && positions.contains($0.value.position)) }
        }
    }

    func queueDepth(queue: String) async throws -> QueueDepth {
        read { state in
            var depth = QueueDepth()
            for message in state.queueMessages.values where message.queue == queue {
                switch message.state {
                case .ready: depth.ready += 1
                case .leased: depth.leased += 1
                case .done: depth.done += 1
                case .dead: depth.dead += 1
                }
            }
            return depth
        }
    }

    // MARK: Lifecycles

    func lifecycleState(lifecycle: String, entity: String, lock: Bool) async throws -> String? {
        read { $0.lifecycles[Self.join(lifecycle, entity)] }
    }

    func saveLifecycleState(lifecycle: String, entity: String, state: String, isNew: Bool, now: Timestamp) async throws {
        read { $0.lifecycles[Self.join(lifecycle, entity)] = state }
    }
}
