import UnraceCore

extension MemoryRows: QueueRows {
    func queueMessages(queue: String, ids: [String], lock: Bool) async throws -> [String: QueueMessage] {
        read { state in
            var found: [String: QueueMessage] = [:]
            for id in ids { if let message = state.queueMessages[Self.join(queue, id)] { found[id] = message } }
            return found
        }
    }

    func insertQueueMessage(_ message: QueueMessage) async throws {
        try read { state in
            let key = Self.join(message.queue, message.id)
            guard state.queueMessages[key] == nil else {
                throw UnraceError(.constraintViolation, "a queue message with this id exists")
            }
            state.queuePosition += 1
            var message = message
            message.position = state.queuePosition
            state.queueMessages[key] = message
        }
    }

    func nextQueueSequence(queue: String, key: String) async throws -> Int64 {
        read { state in
            let next = state.queueSequences[Self.join(queue, key), default: 0] + 1
            state.queueSequences[Self.join(queue, key)] = next
            return next
        }
    }

    func leasableQueueMessages(queue: String, at now: Timestamp, limit: Int) async throws -> [QueueMessage] {
        read { state in
            Array(
                state.queueMessages.values
                    .filter { $0.queue == queue && ($0.state == .ready || $0.state == .leased) && $0.visibleAt <= now }
                    .sorted { ($0.visibleAt, $0.position) < ($1.visibleAt, $1.position) }
                    .prefix(max(0, limit))
            )
        }
    }

    func saveQueueMessage(_ message: QueueMessage) async throws {
        read { $0.queueMessages[Self.join(message.queue, message.id)] = message }
    }

    func queueMessages(
        queue: String,
        state wanted: QueueMessageState,
        completedBefore: Timestamp?,
        limit: Int
    ) async throws -> [QueueMessage] {
        read { state in
            Array(
                state.queueMessages.values
                    .filter { message in
                        message.queue == queue && message.state == wanted
                            && (completedBefore.map { cutoff in message.completedAt.map { $0 <= cutoff } ?? false } ?? true)
                    }
                    .sorted {
                        ($0.completedAt ?? .init(milliseconds: .min), $0.position) < (
                            $1.completedAt ?? .init(milliseconds: .min), $1.position
                        )
                    }
                    .prefix(max(0, limit))
            )
        }
    }

    func deleteCompletedQueueMessages(queue: String, positions: [Int64]) async throws -> Int {
        let positions = Set(positions)
        return read { state in
            let before = state.queueMessages.count
            state.queueMessages = state.queueMessages.filter {
                !($0.value.queue == queue && $0.value.state == .done && positions.contains($0.value.position))
            }
            return before - state.queueMessages.count
        }
    }

    func queueDepth(queue: String) async throws -> QueueDepth {
        read { state in
            var depth = QueueDepth()
            for message in state.queueMessages.values where message.queue == queue {
                switch message.state {
                case .ready: depth.ready += 1
                case .leased: depth.leased += 1
                case .done: depth.done += 1
                case .dead: depth.dead += 1
                }
            }
            return depth
        }
    }
}
