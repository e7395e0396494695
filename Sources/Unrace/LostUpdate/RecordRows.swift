public import UnraceCore

/// The rows of ``Records``: versioned records, compared and swapped.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol RecordRows: StepTime {
    /// A record, locked when `lock` is set.
    func record(collection: String, id: String, lock: Bool) async throws -> StoredRecord?
    /// Writes a record: inserts it when `isNew`, else replaces it.
    func saveRecord(_ record: StoredRecord, isNew: Bool) async throws
}
