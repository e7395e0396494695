public import UnraceCore

// Records, counters, quotas and holds in memory: each a single step, like one conditional
// statement (or one transaction for holds) on a SQL store.
extension MemoryStore {
    /// The stored bytes and version of a record.
    public func readRecord(collection: String, id: String) async throws -> (value: [UInt8], version: Int64)? {
        try await withTransaction { tx in tx.working.withLock { $0.versioned["\(collection)\u{0}\(id)"] } }
    }

    /// Creates a record at version 1 unless it exists; returns the existing version if it does.
    public func createRecord(collection: String, id: String, value: [UInt8], now: Timestamp) async throws -> Int64? {
        try await withTransaction { tx in
            tx.working.withLock { working in
                let key = "\(collection)\u{0}\(id)"
                if let existing = working.versioned[key] { return existing.version }
                working.versioned[key] = (value, 1)
                return nil
            }
        }
    }

    /// Compare-and-swap on the version; `nil` on a conflict.
    public func writeRecord(collection: String, id: String, value: [UInt8], expectedVersion: Int64, now: Timestamp) async throws -> Int64? {
        try await withTransaction { tx in
            tx.working.withLock { working in
                let key = "\(collection)\u{0}\(id)"
                guard let current = working.versioned[key] else { return nil }
                guard current.version == expectedVersion || disabledGuards.contains(.versionCheck) else { return nil }
                working.versioned[key] = (value, current.version + 1)
                return current.version + 1
            }
        }
    }

    /// Creates a bounded counter unless it exists.
    public func createCounter(name: String, value: Int64, floor: Int64, ceiling: Int64) async throws -> Bool {
        try await withTransaction { tx in
            tx.working.withLock { working in
                guard working.counters[name] == nil else { return false }
                working.counters[name] = (value, floor, ceiling)
                return true
            }
        }
    }

    /// Adds `delta` only if the result stays within the bounds.
    public func adjustCounter(name: String, by delta: Int64) async throws -> CounterStep {
        try await withTransaction { tx in
            tx.working.withLock { working in
                guard var counter = working.counters[name] else { return .notFound }
                let (next, overflow) = counter.value.addingReportingOverflow(delta)
                guard !overflow, next >= counter.floor, next <= counter.ceiling else { return .refused(current: counter.value) }
                counter.value = next
                working.counters[name] = counter
                return .applied(value: next)
            }
        }
    }

    /// Consumes `units` of `limit` in the window starting at `windowStart`.
    public func consumeQuota(name: String, units: Int64, limit: Int64, windowStart: Timestamp) async throws -> QuotaStep {
        try await withTransaction { tx in
            tx.working.withLock { working in
                let current = working.quotas[name]
                let used = current?.windowStart == windowStart ? current!.used : 0
                guard used + units <= limit else { return .denied(used: current?.used ?? 0) }
                working.quotas[name] = (windowStart, used + units)
                return .granted(used: used + units)
            }
        }
    }

    /// Creates a resource unless it exists.
    public func createResource(name: String, capacity: Int64) async throws -> Bool {
        try await withTransaction { tx in
            tx.working.withLock { working in
                guard working.resources[name] == nil else { return false }
                working.resources[name] = (capacity, 0, 0)
                return true
            }
        }
    }

    /// Holds units of a resource under `key`, reclaiming expired holds first.
    public func hold(resource: String, key: String, units: Int64, now: Timestamp, expiresAt: Timestamp) async throws -> HoldStep {
        try await withTransaction { tx in
            tx.working.withLock { working in
                if let existing = working.holds[key] { return .hold(existing) }
                guard var pool = working.resources[resource] else { return .notFound }
                for var expired in working.holds.values
                where expired.resource == resource && expired.state == .held && expired.expiresAt <= now {
                    expired.state = .released
                    working.holds[expired.key] = expired
                    pool.held -= expired.units
                }
                guard pool.held + pool.confirmed + units <= pool.capacity else {
                    working.resources[resource] = pool
                    return .insufficient(available: pool.capacity - pool.held - pool.confirmed)
                }
                pool.held += units
                working.resources[resource] = pool
                let hold = Hold(key: key, resource: resource, units: units, state: .held, expiresAt: expiresAt)
                working.holds[key] = hold
                return .hold(hold)
            }
        }
    }

    /// Confirms or releases a live hold.
    public func settleHold(key: String, confirm: Bool, now: Timestamp) async throws -> HoldStep {
        try await withTransaction { tx in
            tx.working.withLock { working in
                guard var hold = working.holds[key] else { return .notFound }
                guard hold.state == .held else { return .notLive(hold) }
                let expired = hold.expiresAt <= now
                hold.state = confirm && !expired ? .confirmed : .released
                working.holds[key] = hold
                if var pool = working.resources[hold.resource] {
                    pool.held -= hold.units
                    if hold.state == .confirmed { pool.confirmed += hold.units }
                    working.resources[hold.resource] = pool
                }
                return expired ? .notLive(hold) : .hold(hold)
            }
        }
    }
}

// The ledger in memory: the same ``LedgerEngine`` over dictionaries.
extension MemoryStore {
    /// Creates accounts that do not exist yet, in one step.
    public func createAccounts(_ accounts: [Account], now: Timestamp) async throws -> [AccountResult] {
        try await withTransaction { tx in
            tx.working.withLock { working in
                accounts.map { account in
                    if let old = working.accounts[account.id] { return AccountResult.compare(account, old) }
                    working.accounts[account.id] = account
                    return .created
                }
            }
        }
    }

    /// Applies a batch of transfers in one step.
    public func submitTransfers(_ batch: [Transfer], now: Timestamp) async throws -> [TransferResult] {
        try await withTransaction { tx in
            tx.working.withLock { working in
                let ids = LedgerEngine.snapshotIDs(of: batch)
                var engine = LedgerEngine(
                    accounts: Dictionary(uniqueKeysWithValues: ids.accounts.compactMap { id in working.accounts[id].map { (id, $0) } }),
                    transfers: Dictionary(uniqueKeysWithValues: ids.transfers.compactMap { id in working.transfers[id].map { (id, $0) } }),
                    failed: Set(ids.transfers.filter { working.failedTransfers[$0] != nil })
                )
                let (results, changes) = engine.apply(batch, now: now)
                for (id, account) in changes.accounts { working.accounts[id] = account }
                for stored in changes.created { working.transfers[stored.transfer.id] = stored }
                for (id, stored) in changes.updated { working.transfers[id] = stored }
                for (id, code) in changes.failures { working.failedTransfers[id] = code }
                return results
            }
        }
    }

    /// The accounts with these ids that exist.
    public func lookupAccounts(_ ids: [String]) async throws -> [Account] {
        try await withTransaction { tx in tx.working.withLock { working in ids.compactMap { working.accounts[$0] } } }
    }

    /// Sums over all accounts.
    public func ledgerTotals() async throws -> LedgerTotals {
        try await withTransaction { tx in
            tx.working.withLock { working in
                working.accounts.values.reduce(into: LedgerTotals(debitsPosted: 0, creditsPosted: 0, debitsPending: 0, creditsPending: 0)) {
                    $0.debitsPosted += $1.debitsPosted
                    $0.creditsPosted += $1.creditsPosted
                    $0.debitsPending += $1.debitsPending
                    $0.creditsPending += $1.creditsPending
                }
            }
        }
    }
}
