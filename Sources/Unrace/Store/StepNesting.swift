import Synchronization
import UnraceCore

/// Refuses a step started inside another step's body.
///
/// A body that starts a second step (a `perform` inside a `perform`, a ledger submission inside
/// an inbox handler) would wait forever for the writer its own step holds on SQLite and in memory,
/// and would commit apart from — and regardless of — its step on PostgreSQL. Every store refuses
/// it the same way, at once, with ``UnraceError/Code/nestedStep``: use the transaction the body was
/// given instead. The mark covers every store and read-only steps too. Tasks a body starts
/// (child or unstructured) carry it only while the step runs; detached tasks never do.
public enum StepNesting {
    /// Whether a step's body is running, shared with the tasks it starts.
    final class Mark: Sendable {
        let active = Mutex(true)
    }

    @TaskLocal static var current: Mark?

    /// Throws ``UnraceError/Code/nestedStep`` when the current task is inside a running step's body.
    public static func check() throws {
        if let current, current.active.withLock({ $0 }) {
            throw UnraceError(
                .nestedStep,
                "a step was started inside another step's body; use the transaction the body was given"
            )
        }
    }

    /// Runs `body` marked as a step's body.
    public static func inside<T>(_ body: () async throws -> T) async rethrows -> T {
        let mark = Mark()
        defer { mark.active.withLock { $0 = false } }
        return try await $current.withValue(mark) { try await body() }
    }
}
