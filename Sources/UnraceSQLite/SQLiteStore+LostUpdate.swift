public import Unrace
public import UnraceCore

// Records, counters, quotas and holds: each one transaction running the shared SQL steps.
extension SQLiteStore {
    var lostUpdateSteps: SQLLostUpdateSteps { SQLLostUpdateSteps(lockClause: table.lockClause) }

    /// The stored bytes and version of a record.
    public func readRecord(collection: String, id: String) async throws -> (value: [UInt8], version: Int64)? {
        try await transaction { tx in try await lostUpdateSteps.readRecord(tx, collection: collection, id: id) }
    }

    /// Creates a record at version 1 unless it exists; returns the existing version if it does.
    public func createRecord(collection: String, id: String, value: [UInt8], now: Timestamp) async throws -> Int64? {
        try await transaction { tx in try await lostUpdateSteps.createRecord(tx, collection: collection, id: id, value: value, now: now) }
    }

    /// Compare-and-swap on the version; `nil` on a conflict.
    public func writeRecord(collection: String, id: String, value: [UInt8], expectedVersion: Int64, now: Timestamp) async throws -> Int64? {
        try await transaction { tx in
            try await lostUpdateSteps.writeRecord(tx, collection: collection, id: id, value: value, expectedVersion: expectedVersion, now: now)
        }
    }

    /// Creates a bounded counter unless it exists.
    public func createCounter(name: String, value: Int64, floor: Int64, ceiling: Int64) async throws -> Bool {
        try await transaction { tx in try await lostUpdateSteps.createCounter(tx, name: name, value: value, floor: floor, ceiling: ceiling) }
    }

    /// Adds `delta` in one conditional statement.
    public func adjustCounter(name: String, by delta: Int64) async throws -> CounterStep {
        try await transaction { tx in try await lostUpdateSteps.adjustCounter(tx, name: name, by: delta) }
    }

    /// Consumes quota units in one conditional statement.
    public func consumeQuota(name: String, units: Int64, limit: Int64, windowStart: Timestamp) async throws -> QuotaStep {
        try await transaction { tx in try await lostUpdateSteps.consumeQuota(tx, name: name, units: units, limit: limit, windowStart: windowStart) }
    }

    /// Creates a resource unless it exists.
    public func createResource(name: String, capacity: Int64) async throws -> Bool {
        try await transaction { tx in try await lostUpdateSteps.createResource(tx, name: name, capacity: capacity) }
    }

    /// Holds units of a resource, reclaiming expired holds first, in one transaction.
    public func hold(resource: String, key: String, units: Int64, now: Timestamp, expiresAt: Timestamp) async throws -> HoldStep {
        try await transaction { tx in
            try await lostUpdateSteps.hold(tx, resource: resource, key: key, units: units, now: now, expiresAt: expiresAt)
        }
    }

    /// Confirms or releases a live hold, in one transaction.
    public func settleHold(key: String, confirm: Bool, now: Timestamp) async throws -> HoldStep {
        try await transaction { tx in try await lostUpdateSteps.settleHold(tx, key: key, confirm: confirm, now: now) }
    }

    var ledgerSteps: SQLLedgerSteps { SQLLedgerSteps(lockClause: table.lockClause) }

    /// Creates accounts that do not exist yet, in one transaction.
    public func createAccounts(_ accounts: [Account], now: Timestamp) async throws -> [AccountResult] {
        try await transaction { tx in try await ledgerSteps.createAccounts(tx, accounts, now: now) }
    }

    /// Applies a batch of transfers in one transaction.
    public func submitTransfers(_ batch: [Transfer], now: Timestamp) async throws -> [TransferResult] {
        try await transaction { tx in try await ledgerSteps.submit(tx, batch, now: now) }
    }

    /// The accounts with these ids that exist.
    public func lookupAccounts(_ ids: [String]) async throws -> [Account] {
        try await transaction { tx in Array(try await ledgerSteps.fetchAccounts(tx, ids, lock: false).values) }
    }

    /// Sums over all accounts.
    public func ledgerTotals() async throws -> LedgerTotals {
        try await transaction { tx in try await ledgerSteps.totals(tx) }
    }
}
