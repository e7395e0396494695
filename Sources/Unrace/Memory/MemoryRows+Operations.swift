import UnraceCore

extension MemoryRows: OperationRows {
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
                    .prefix(max(0, limit))
            )
        }
    }

    func deleteOperations(scope: Scope, keys: [OperationKey]) async throws {
        read { state in for key in keys { state.operations[.init(scope: scope, key: key)] = nil } }
    }
}
