import UnraceCore

extension MemoryRows: CounterRows {
    func counter(name: String, lock: Bool) async throws -> CounterState? { read { $0.counters[name] } }

    func saveCounter(_ counter: CounterState, isNew: Bool) async throws { read { $0.counters[counter.name] = counter } }

    func quota(name: String, lock: Bool) async throws -> QuotaState? { read { $0.quotas[name] } }

    func saveQuota(_ quota: QuotaState, isNew: Bool) async throws { read { $0.quotas[quota.name] = quota } }
}
