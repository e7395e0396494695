public import Unrace
public import UnraceCore

/// `RecordRows` in SQL.
extension SQLRows: RecordRows {
    public func record(collection: String, id: String, lock: Bool) async throws -> StoredRecord? {
        try await select(
            "SELECT version, value, updated_at FROM unrace_records WHERE collection = ? AND id = ?",
            [.text(collection), .text(id)],
            lock: lock
        ).first.map { row in
            StoredRecord(
                collection: collection,
                id: id,
                value: row.optionalBytes("value") ?? [],
                version: try row.int64("version"),
                updatedAt: Timestamp(milliseconds: try row.int64("updated_at"))
            )
        }
    }

    public func saveRecord(_ record: StoredRecord, isNew: Bool) async throws {
        if isNew {
            try await write(
                "INSERT INTO unrace_records (collection, id, version, value, updated_at) VALUES (?, ?, ?, ?, ?)",
                [
                    .text(record.collection), .text(record.id), .integer(record.version), .blob(record.value),
                    .integer(record.updatedAt.milliseconds),
                ]
            )
        } else {
            try await write(
                "UPDATE unrace_records SET version = ?, value = ?, updated_at = ? WHERE collection = ? AND id = ?",
                [
                    .integer(record.version), .blob(record.value), .integer(record.updatedAt.milliseconds), .text(record.collection),
                    .text(record.id),
                ]
            )
        }
    }
}
