import UnraceCore

// MARK: Producing

extension MessageQueue {
    /// Enqueues messages in a step of their own.
    /// - Returns: one result per message, in order.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a bad message (nothing written);
    ///   ``UnraceError/Code/messageIDReused`` for an id stored, or delivered to an inbox, with
    ///   another payload or ordering key (nothing written); store errors.
    @discardableResult
    public func enqueue(_ messages: [OutgoingMessage]) async throws -> [EnqueueResult] {
        let messages = try validate(messages)
        let results = try await telemetry.step(store, StepInfo("enqueue", name, clock: configuration.clock)) { context in
            try await Self.enqueue(messages, queue: name, maxAttempts: Int64(configuration.maxAttempts), rows: context.rows)
        }
        metrics.enqueued(results)
        return results
    }

    /// Enqueues messages in a transaction the store gave you — a ``Operations/perform(key:scope:fingerprint:whenInProgress:_:)``
    /// body, an inbox handler, `withTransaction`: the transactional outbox. The messages commit
    /// with that transaction's writes, or not at all.
    /// - Throws: as ``enqueue(_:)``; ``UnraceError/Code/invalidArgument`` for a transaction of
    ///   another database or schema than the queue's store (nothing written). Throwing out of the
    ///   transaction's body rolls the enqueue back.
    @discardableResult
    public func enqueue(_ messages: [OutgoingMessage], in transaction: S.Transaction) async throws -> [EnqueueResult] {
        let messages = try validate(messages)
        let rows = try await store.rows(joining: transaction, clock: configuration.clock)
        let results = try await Self.enqueue(messages, queue: name, maxAttempts: Int64(configuration.maxAttempts), rows: rows)
        metrics.enqueued(results)
        return results
    }

    static func enqueue(
        _ messages: [OutgoingMessage],
        queue: String,
        maxAttempts: Int64,
        rows: any StoreRows
    ) async throws -> [EnqueueResult] {
        let stored = try await rows.queueMessages(queue: queue, ids: messages.map(\.id), lock: true)
        // Every id is checked before anything is written, so a refused batch writes nothing even
        // inside a caller's transaction that goes on to commit.
        var seen: [String: OutgoingMessage] = [:]
        var results: [EnqueueResult] = []
        results.reserveCapacity(messages.count)
        for message in messages {
            let earlier =
                stored[message.id].map { (payload: $0.payload, orderingKey: $0.orderingKey) }
                ?? seen[message.id].map { (payload: $0.payload, orderingKey: $0.orderingKey) }
            switch QueueRule.enqueue(payload: message.payload, orderingKey: message.orderingKey, earlier: earlier) {
            case .idReused:
                throw UnraceError(
                    .messageIDReused,
                    "this message id was enqueued before with another payload or ordering key; message ids are unique per queue"
                )
            case .alreadyEnqueued:
                results.append(.alreadyEnqueued)
            case .new:
                seen[message.id] = message
                results.append(.enqueued)
            }
        }
        // A message with an ordering key whose delivery an inbox took was enqueued before, even
        // once the message itself is purged: enqueued again, it would take a new position, which
        // the inbox refuses for an event id it holds (event_id_reused), and its key's stream
        // would wait at that position for ever.
        var deliveries: [String: (id: String, stream: String)] = [:]  // message id → its inbox event's names
        for (message, result) in zip(messages, results) where result == .enqueued {
            guard let key = message.orderingKey else { continue }
            deliveries[message.id] = try InboxEvent.derivedNames(queue: queue, messageID: message.id, orderingKey: key)
        }
        let received = deliveries.isEmpty ? [:] : try await rows.storedInboxEvents(ids: deliveries.values.map(\.id))
        for index in messages.indices where results[index] == .enqueued {
            let message = messages[index]
            guard let names = deliveries[message.id], let event = received[names.id] else { continue }
            guard event.stream == names.stream, event.payload == message.payload else {
                throw UnraceError(
                    .messageIDReused,
                    "this message id was delivered to an inbox before with another payload or ordering key; message ids are unique per queue"
                )
            }
            results[index] = .alreadyEnqueued
        }
        let now = try await rows.now()
        var inserted: Set<String> = []
        let new = zip(messages, results).filter { $0.1 == .enqueued && inserted.insert($0.0.id).inserted }.map(\.0)
        // Ordering keys' sequence rows are locked in byte order of the key (the stores' order),
        // each key's messages in call order: two transactions enqueuing on crossed keys
        // ([A, B] and [B, A]) never wait on each other in a cycle.
        var sequences: [String: Int64] = [:]
        let keyed = new.enumerated().compactMap { item in
            item.element.orderingKey.map { (key: $0, offset: item.offset, id: item.element.id) }
        }
        for item in keyed.sorted(by: { $0.key == $1.key ? $0.offset < $1.offset : $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            sequences[item.id] = try await rows.nextQueueSequence(queue: queue, key: item.key)
        }
        for message in new {
            let sequence = sequences[message.id]
            let stored = QueueMessage(
                queue: queue,
                id: message.id,
                orderingKey: message.orderingKey,
                sequence: sequence,
                payload: message.payload,
                state: .ready,
                attempts: 0,
                maxAttempts: maxAttempts,
                visibleAt: now + message.delay,
                leasedBy: nil,
                lastError: nil,
                enqueuedAt: now,
                completedAt: nil
            )
            try await rows.insertQueueMessage(stored)
        }
        return results
    }

    private func validate(_ messages: [OutgoingMessage]) throws -> [OutgoingMessage] {
        guard (1...QueueConfiguration.batchMaximum).contains(messages.count) else {
            throw UnraceError(.invalidArgument, "enqueue takes 1 to \(QueueConfiguration.batchMaximum) messages")
        }
        return try messages.map { message in
            guard message.payload.count <= QueueConfiguration.payloadByteCountMaximum else {
                throw UnraceError(
                    .invalidArgument,
                    "a message payload is \(message.payload.count) bytes; the maximum is \(QueueConfiguration.payloadByteCountMaximum)"
                )
            }
            guard message.delay >= .zero, message.delay <= QueueConfiguration.delayMaximum else {
                throw UnraceError(.invalidArgument, "a message delay must be between 0 and 30 days")
            }
            return OutgoingMessage(
                id: try NameRule.messageID.validate(message.id),
                payload: message.payload,
                orderingKey: try message.orderingKey.map(NameRule.orderingKey.validate),
                delay: message.delay
            )
        }
    }
}
