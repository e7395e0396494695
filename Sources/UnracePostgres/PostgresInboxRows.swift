import PostgresNIO
import Unrace
import UnraceCore

/// The inbox rows on PostgreSQL: the shared SQL, with the two statements of every in-order step
/// as named prepared statements, so each connection parses and plans them once.
struct PostgresInboxRows: InboxRows {
    let tx: PostgresTransaction
    let shared: SQLInboxRows<PostgresTransaction>

    init(_ tx: PostgresTransaction) {
        self.tx = tx
        self.shared = SQLInboxRows(tx, dialect: .postgres)
    }

    func lockStream(_ stream: String) async throws -> StreamHead {
        try await PostgresTransaction.mapErrors {
            for try await (head, parked, gapSince) in try await tx.connection.execute(LockStream(stream: stream), logger: tx.logger) {
                return StreamHead(stream: stream, head: head, parked: Int(parked), gapSince: gapSince.map(Timestamp.init(milliseconds:)))
            }
            throw UnraceError(.storeFailure, "locking an inbox stream returned no row")
        }
    }

    func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws {
        let statement = RecordApplied(values: InboxSQL.recordAppliedValues(event, status, reason, now, stream))
        try await PostgresTransaction.mapErrors {
            _ = try await tx.connection.execute(statement, logger: tx.logger)
        }
    }

    func isTaken(_ event: InboxEvent) async throws -> Bool { try await shared.isTaken(event) }

    func insert(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        try await shared.insert(event, status: status, reason: reason, now: now)
    }

    func setStatus(of event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws {
        try await shared.setStatus(of: event, status, reason: reason)
    }

    func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent? {
        try await shared.parkedEvent(stream: stream, sequence: sequence)
    }

    func lowestParkedSequence(stream: String) async throws -> Int64? { try await shared.lowestParkedSequence(stream: stream) }

    func save(_ head: StreamHead) async throws { try await shared.save(head) }

    struct LockStream: PostgresPreparedStatement {
        typealias Row = (Int64, Int32, Int64?)
        static let sql = PostgresTransaction.numberPlaceholders(InboxSQL.lockStreamSQL)
        static let bindingDataTypes: [PostgresDataType] = [.text]
        var stream: String
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(stream)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct RecordApplied: PostgresPreparedStatement {
        typealias Row = ()
        static let sql = PostgresTransaction.numberPlaceholders(InboxSQL.recordAppliedSQL)
        static let bindingDataTypes: [PostgresDataType] = [
            .text, .text, .int8, .text, .bytea, .text, .text, .int8, .int8, .int8, .int8,
        ]
        var values: [SQLValue]
        func makeBindings() throws -> PostgresBindings { PostgresTransaction.bindings(values) }
        func decodeRow(_ row: PostgresRow) throws -> Row {}
    }
}
