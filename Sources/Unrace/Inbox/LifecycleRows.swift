public import UnraceCore

/// The rows of ``LifecycleGuard``: each entity's current state.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol LifecycleRows: StepTime {
    /// An entity's lifecycle state, `nil` for an entity never seen. With `lock`, the state is
    /// locked — its row, or, when absent, the entity itself, so a concurrent first event waits.
    func lifecycleState(lifecycle: String, entity: String, lock: Bool) async throws -> String?
    /// Writes an entity's lifecycle state.
    func saveLifecycleState(lifecycle: String, entity: String, state: String, isNew: Bool, now: Timestamp) async throws
    /// Called when a step that locked an entity never seen ends without a state for it (its first
    /// event was rejected or absorbed): a store that locked the absence with a row of its own
    /// removes that row, so refused events for unknown entities leave nothing behind.
    func forgetUnseenEntity(lifecycle: String, entity: String) async throws
}

extension LifecycleRows {
    /// Nothing to remove: a store that locks an absent entity without writing a row.
    public func forgetUnseenEntity(lifecycle: String, entity: String) async throws {}
}
