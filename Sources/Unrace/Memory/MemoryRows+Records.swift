import UnraceCore

extension MemoryRows: RecordRows {
    func record(collection: String, id: String, lock: Bool) async throws -> StoredRecord? {
        read { $0.records[Self.join(collection, id)] }
    }

    func saveRecord(_ record: StoredRecord, isNew: Bool) async throws {
        read { $0.records[Self.join(record.collection, record.id)] = record }
    }
}
