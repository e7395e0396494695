public import UnraceCore

/// The rows of ``Counters``: bounded counters and quota windows.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol CounterRows: StepTime {
    /// A counter, locked when `lock` is set.
    func counter(name: String, lock: Bool) async throws -> CounterState?
    /// Writes a counter: inserts it when `isNew`, else replaces its value.
    func saveCounter(_ counter: CounterState, isNew: Bool) async throws
    /// A quota, locked when `lock` is set.
    func quota(name: String, lock: Bool) async throws -> QuotaState?
    /// Writes a quota: inserts it when `isNew`, else replaces its window and use.
    func saveQuota(_ quota: QuotaState, isNew: Bool) async throws
}
