public import UnraceCore

/// The rows of ``Reservations``: resources and their holds.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol HoldRows: StepTime {
    /// A resource, locked when `lock` is set.
    func resource(name: String, lock: Bool) async throws -> ResourceState?
    /// Writes a resource: inserts it when `isNew`, else replaces its held and confirmed units.
    func saveResource(_ resource: ResourceState, isNew: Bool) async throws
    /// A hold by key (unique across resources), locked when `lock` is set.
    func hold(key: String, lock: Bool) async throws -> Hold?
    /// The holds of `resource` that are still `held` with an expiry at or before `now`, locked.
    func expiredHolds(resource: String, at now: Timestamp) async throws -> [Hold]
    /// Names of resources that have `held` holds expired at or before `now`, in byte order, at
    /// most `limit`; not locked (lock each resource before its holds).
    func resourcesWithExpiredHolds(at now: Timestamp, limit: Int) async throws -> [String]
    /// Writes a hold: inserts it when `isNew`, else replaces its state.
    func saveHold(_ hold: Hold, isNew: Bool) async throws
    /// Writes the state of many existing holds, as ``saveHold(_:isNew:)`` with `isNew` false does
    /// for each: what releasing a resource's expired holds writes. A store should write them in
    /// a few statements, not one per hold (a resource may have many expired holds, all released in
    /// one step). Default: ``saveHold(_:isNew:)`` for each.
    func saveHoldStates(_ holds: [Hold]) async throws
}

extension HoldRows {
    /// ``saveHold(_:isNew:)`` for each hold.
    public func saveHoldStates(_ holds: [Hold]) async throws {
        for hold in holds { try await saveHold(hold, isNew: false) }
    }
}
