public import UnraceCore

// Every SQL store runs the same steps: one transaction each, over the shared SQL. A store
// overrides a step only where its driver does better (PostgreSQL's prepared inbox statements).
extension SQLStore {
    package var lostUpdateSteps: SQLLostUpdateSteps { SQLLostUpdateSteps(lockClause: dialect.rowLockClause) }
    package var ledgerSteps: SQLLedgerSteps { SQLLedgerSteps(lockClause: dialect.rowLockClause) }
    package var inboxSteps: SQLInboxSteps { SQLInboxSteps(lockClause: dialect.rowLockClause, dialect: dialect) }

    // MARK: Records, counters, quotas, holds

    /// The stored bytes and version of a record.
    public func readRecord(collection: String, id: String) async throws -> (value: [UInt8], version: Int64)? {
        try await withTransaction { tx in try await lostUpdateSteps.readRecord(tx, collection: collection, id: id) }
    }

    /// Creates a record at version 1 unless it exists; returns the existing version if it does.
    public func createRecord(collection: String, id: String, value: [UInt8], now: Timestamp) async throws -> Int64? {
        try await withTransaction { tx in try await lostUpdateSteps.createRecord(tx, collection: collection, id: id, value: value, now: now) }
    }

    /// Compare-and-swap on the version; `nil` on a conflict.
    public func writeRecord(collection: String, id: String, value: [UInt8], expectedVersion: Int64, now: Timestamp) async throws -> Int64? {
        try await withTransaction { tx in
            try await lostUpdateSteps.writeRecord(tx, collection: collection, id: id, value: value, expectedVersion: expectedVersion, now: now)
        }
    }

    /// Creates a bounded counter unless it exists.
    public func createCounter(name: String, value: Int64, floor: Int64, ceiling: Int64) async throws -> Bool {
        try await withTransaction { tx in try await lostUpdateSteps.createCounter(tx, name: name, value: value, floor: floor, ceiling: ceiling) }
    }

    /// Adds `delta` in one conditional statement.
    public func adjustCounter(name: String, by delta: Int64) async throws -> CounterStep {
        try await withTransaction { tx in try await lostUpdateSteps.adjustCounter(tx, name: name, by: delta) }
    }

    /// Consumes quota units in one conditional statement.
    public func consumeQuota(name: String, units: Int64, limit: Int64, windowStart: Timestamp) async throws -> QuotaStep {
        try await withTransaction { tx in try await lostUpdateSteps.consumeQuota(tx, name: name, units: units, limit: limit, windowStart: windowStart) }
    }

    /// Creates a resource unless it exists.
    public func createResource(name: String, capacity: Int64) async throws -> Bool {
        try await withTransaction { tx in try await lostUpdateSteps.createResource(tx, name: name, capacity: capacity) }
    }

    /// Holds units of a resource, reclaiming expired holds first, in one transaction.
    public func hold(resource: String, key: String, units: Int64, now: Timestamp, expiresAt: Timestamp) async throws -> HoldStep {
        try await withTransaction { tx in
            try await lostUpdateSteps.hold(tx, resource: resource, key: key, units: units, now: now, expiresAt: expiresAt)
        }
    }

    /// Confirms or releases a live hold, in one transaction.
    public func settleHold(key: String, confirm: Bool, now: Timestamp) async throws -> HoldStep {
        try await withTransaction { tx in try await lostUpdateSteps.settleHold(tx, key: key, confirm: confirm, now: now) }
    }

    // MARK: Ledger

    /// Creates accounts that do not exist yet, in one transaction.
    public func createAccounts(_ accounts: [Account], now: Timestamp) async throws -> [AccountResult] {
        try await withTransaction { tx in try await ledgerSteps.createAccounts(tx, accounts, now: now) }
    }

    /// Applies a batch of transfers in one transaction.
    public func submitTransfers(_ batch: [Transfer], now: Timestamp) async throws -> [TransferResult] {
        try await withTransaction { tx in try await ledgerSteps.submit(tx, batch, now: now) }
    }

    /// The accounts with these ids that exist.
    public func lookupAccounts(_ ids: [String]) async throws -> [Account] {
        try await withTransaction { tx in Array(try await ledgerSteps.fetchAccounts(tx, ids, lock: false).values) }
    }

    /// Sums over all accounts.
    public func ledgerTotals() async throws -> LedgerTotals {
        try await withTransaction { tx in try await ledgerSteps.totals(tx) }
    }

    // MARK: Inbox and lifecycles

    /// Receives one event in one transaction. See ``Store/receive(_:parkingLimit:now:_:)``.
    public func receive(
        _ event: InboxEvent, parkingLimit: Int, now: Timestamp, _ handler: (Transaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        try await withTransaction { tx in try await inboxSteps.receive(tx, event, parkingLimit: parkingLimit, now: now, handler) }
    }

    /// Skips a stream's gap and drains. See ``Store/skipGap(stream:now:_:)``.
    public func skipGap(
        stream: String, now: Timestamp, _ handler: (Transaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        try await withTransaction { tx in try await inboxSteps.skipGap(tx, stream: stream, now: now, handler) }
    }

    /// Streams with a gap opened at or before `cutoff`.
    public func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        try await withTransaction { tx in try await inboxSteps.gaps(tx, openedBefore: cutoff, limit: limit) }
    }

    /// The last applied sequence of a stream.
    public func inboxHead(stream: String) async throws -> Int64 {
        try await withTransaction { tx in try await inboxSteps.head(tx, stream: stream) }
    }

    /// Applies a lifecycle event to an entity in one transaction. See ``Store/transition(_:name:entity:event:now:_:)``.
    public func transition(
        _ lifecycle: Lifecycle, name: String, entity: String, event: String, now: Timestamp,
        _ handler: (Transaction, Lifecycle.Decision) async throws -> Void
    ) async throws -> Lifecycle.Decision {
        try await withTransaction { tx in
            try await inboxSteps.transition(tx, lifecycle, name: name, entity: entity, event: event, now: now, handler)
        }
    }
}
