public import UnraceCore

/// Operating a queue: its depth, its dead letters, redriving one, purging acked messages.
extension MessageQueue {
    /// How many messages are in each state; also sets the gauge `unrace_queue_messages{queue,
    /// store, state}` (call it from a scrape handler, as `unrace serve`'s `/metrics` does, or
    /// periodically).
    public func depth() async throws -> QueueDepth {
        let depth = try await telemetry.step(store, StepInfo("depth", name, clock: configuration.clock, isReadOnly: true)) { context in
            try await context.rows.queueDepth(queue: name)
        }
        metrics.gauge(depth)
        return depth
    }

    /// Dead-lettered messages, oldest first.
    public func deadLetters(limit: Int = 100) async throws -> [QueueMessage] {
        guard (1...QueueConfiguration.batchMaximum).contains(limit) else {
            throw UnraceError(.invalidArgument, "deadLetters takes a limit of 1 to \(QueueConfiguration.batchMaximum)")
        }
        return try await telemetry.step(store, StepInfo("deadLetters", name, clock: configuration.clock, isReadOnly: true)) { context in
            try await context.rows.queueMessages(queue: name, state: .dead, completedBefore: nil, limit: limit)
        }
    }

    /// Sends a dead-lettered message round again: ready now, with ``QueueConfiguration/maxAttempts``
    /// more attempts. Attempt numbers go on from where they were, so a delivery from before the
    /// redrive stays fenced — and so does the backoff: a nack after the redrive waits
    /// ``backoff(afterAttempt:)`` of the attempt's own number (often ``QueueConfiguration/backoffMaximum``),
    /// not the first retry's backoff.
    /// - Throws: ``UnraceError/Code/notFound`` for an unknown id;
    ///   ``UnraceError/Code/invalidArgument`` for a message that is not dead-lettered.
    public func redrive(id: String) async throws {
        let id = try NameRule.messageID.validate(id)
        try await telemetry.step(store, StepInfo("redrive", id, clock: configuration.clock)) { context in
            guard var message = try await context.rows.queueMessages(queue: name, ids: [id], lock: true)[id] else {
                throw UnraceError(.notFound, "there is no such message in this queue")
            }
            guard message.state == .dead else {
                throw UnraceError(.invalidArgument, "only a dead-lettered message can be redriven")
            }
            // Attempts keep growing (they are the fencing token): the message gets this queue's
            // configured number of attempts more (the redriving operator's, not the producer's).
            message = QueueRule.redrive(message, attempts: Int64(configuration.maxAttempts), now: try await context.rows.now())
            try await context.rows.saveQueueMessage(message)
        }
    }

    /// Deletes up to `limit` acked messages completed at least `age` ago, oldest first. Once
    /// purged, an id can be enqueued again as a new message (with a new position, so deliveries
    /// of the old one stay fenced). Purge only what the inbox no longer needs: a message with an
    /// ordering key enqueued again gets a new sequence under the same inbox event id, which the
    /// inbox refuses with ``UnraceError/Code/eventIDReused``.
    /// - Returns: how many were deleted.
    public func purgeCompleted(olderThan age: Duration, limit: Int = 1_000) async throws -> Int {
        guard (1...QueueConfiguration.batchMaximum).contains(limit) else {
            throw UnraceError(.invalidArgument, "purgeCompleted takes a limit of 1 to \(QueueConfiguration.batchMaximum)")
        }
        guard age >= .zero, age <= .seconds(3_650 * 86_400) else {
            throw UnraceError(.invalidArgument, "the age must be between 0 and 3,650 days")
        }
        return try await telemetry.step(store, StepInfo("purgeCompleted", name, clock: configuration.clock)) { context in
            let now = try await context.rows.now()
            let (cutoff, overflow) = now.milliseconds.subtractingReportingOverflow(age.wholeMilliseconds)
            // A clock so near Int64.min that `age` reaches before it: nothing is that old.
            guard !overflow else { return 0 }
            let done = try await context.rows.queueMessages(
                queue: name,
                state: .done,
                completedBefore: Timestamp(milliseconds: cutoff),
                limit: limit
            )
            return try await context.rows.deleteCompletedQueueMessages(queue: name, positions: done.map(\.position))
        }
    }
}
