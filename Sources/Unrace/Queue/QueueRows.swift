public import UnraceCore

/// The rows of ``MessageQueue``: messages, their states and the ordering keys' counters.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol QueueRows: StepTime {
    /// The stored messages of `queue` among `ids`, by id; locked when `lock` is set.
    func queueMessages(queue: String, ids: [String], lock: Bool) async throws -> [String: QueueMessage]
    /// Inserts a new message (the store assigns its ``UnraceCore/QueueMessage/position``). A concurrent step
    /// inserting the same id makes one of them fail (PostgreSQL retries it, and it finds the row).
    func insertQueueMessage(_ message: QueueMessage) async throws
    /// Moves an ordering key's counter on by one (creating it at 1) and returns the new value.
    func nextQueueSequence(queue: String, key: String) async throws -> Int64
    /// Up to `limit` messages of `queue` that are `ready` or `leased` with ``UnraceCore/QueueMessage/visibleAt``
    /// at or before `now`, by visibility then position, locked — skipping rows another step holds
    /// locked (PostgreSQL's `SKIP LOCKED`), so concurrent workers take different messages.
    func leasableQueueMessages(queue: String, at now: Timestamp, limit: Int) async throws -> [QueueMessage]
    /// Writes an existing message's state, attempts, attempt limit (a redrive raises it),
    /// visibility, worker, error and completion.
    func saveQueueMessage(_ message: QueueMessage) async throws
    /// Messages of `queue` in `state`, by completion then position; only those completed at or
    /// before `completedBefore`, when given. Not locked unless the step's store locks every read.
    func queueMessages(queue: String, state: QueueMessageState, completedBefore: Timestamp?, limit: Int) async throws -> [QueueMessage]
    /// Deletes acked messages of `queue` by position (a message enqueued again under a purged id
    /// has another position, so a purge that read the old one cannot delete it).
    /// - Returns: how many it deleted: a message another step deleted first is not counted.
    func deleteCompletedQueueMessages(queue: String, positions: [Int64]) async throws -> Int
    /// How many messages of `queue` are in each state.
    func queueDepth(queue: String) async throws -> QueueDepth
}
