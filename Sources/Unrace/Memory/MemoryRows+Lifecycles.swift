import UnraceCore

extension MemoryRows: LifecycleRows {
    func lifecycleState(lifecycle: String, entity: String, lock: Bool) async throws -> String? {
        read { $0.lifecycles[Self.join(lifecycle, entity)] }
    }

    func saveLifecycleState(lifecycle: String, entity: String, state: String, isNew: Bool, now: Timestamp) async throws {
        read { $0.lifecycles[Self.join(lifecycle, entity)] = state }
    }
}
