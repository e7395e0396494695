import UnraceCore

extension MemoryRows: HoldRows {
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
            Array(
                Set(state.holds.values.filter { $0.state == .held && $0.expiresAt <= now }.map(\.resource)).sorted().prefix(max(0, limit))
            )
        }
    }

    func saveHold(_ hold: Hold, isNew: Bool) async throws { read { $0.holds[hold.key] = hold } }
}
