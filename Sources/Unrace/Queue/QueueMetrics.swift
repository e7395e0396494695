import CoreMetrics

/// The counters a ``MessageQueue`` keeps, through swift-metrics. Dimensions are the queue, the
/// store (`sqlite`, `postgres`, `memory`) and the outcome; never a message id, a key or a payload.
/// Counted once the call's step has committed (an outbox enqueue, once the call returns: its
/// transaction may still roll back).
///
/// | label | dimensions | counts |
/// |---|---|---|
/// | `unrace_queue_enqueued_total` | queue, store, result | messages enqueued (`enqueued`) or recognised (`already_enqueued`) |
/// | `unrace_queue_deliveries_total` | queue, store, delivery | leases handed out: `first` or `redelivery` |
/// | `unrace_queue_acks_total` | queue, store | acknowledged deliveries |
/// | `unrace_queue_nacks_total` | queue, store | nacked deliveries |
/// | `unrace_queue_dead_lettered_total` | queue, store, cause | messages dead-lettered after a `nack` or an expired `lease` |
/// | `unrace_queue_fenced_total` | queue, store | acks, nacks and extensions refused as fenced: the message was delivered again, or this delivery was already nacked or dead-lettered (a repeated `nack` too) |
/// | `unrace_queue_messages` (gauge) | queue, store, state | messages `ready`, `leased`, `done`, `dead`, as the last ``MessageQueue/depth()`` read them |
struct QueueMetrics: Sendable {
    let handles: MetricHandles
    let dimensions: [(String, String)]

    /// Counts through `telemetry`'s metric handles, under its store label.
    init(telemetry: Telemetry, queue: String) {
        self.handles = telemetry.handles
        self.dimensions = [("queue", queue), ("store", telemetry.store)]
    }

    func count(_ label: String, _ extra: (String, String)? = nil, by amount: Int = 1) {
        guard amount > 0 else { return }
        handles.counter(label, dimensions + (extra.map { [$0] } ?? [])).increment(by: amount)
    }

    func enqueued(_ results: [EnqueueResult]) {
        count("unrace_queue_enqueued_total", ("result", "enqueued"), by: results.filter { $0 == .enqueued }.count)
        count("unrace_queue_enqueued_total", ("result", "already_enqueued"), by: results.filter { $0 == .alreadyEnqueued }.count)
    }

    func gauge(_ depth: QueueDepth) {
        for (state, value) in [("ready", depth.ready), ("leased", depth.leased), ("done", depth.done), ("dead", depth.dead)] {
            handles.gauge("unrace_queue_messages", dimensions + [("state", state)]).record(value)
        }
    }

    /// Runs `body`, counting a ``UnraceError/Code/fenced`` refusal.
    func fencing<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as UnraceError where error.code == .fenced {
            count("unrace_queue_fenced_total")
            throw error
        }
    }
}
