import UnraceCore

/// Refuses a step started inside another step's body.
///
/// A body that starts a second step (a `perform` inside a `perform`, a ledger submission inside
/// an inbox handler) would wait forever for the writer its own step holds on SQLite and in memory,
/// and would commit apart from — and regardless of — its step on PostgreSQL. Every store refuses
/// it the same way, at once, with ``UnraceError/Code/nestedStep``: use the transaction the body was
/// given instead. Child tasks of a body inherit the mark; detached tasks do not.
public enum StepNesting {
    @TaskLocal static var isInsideStep = false

    /// Throws ``UnraceError/Code/nestedStep`` when the current task is inside a step's body.
    public static func check() throws {
        if isInsideStep {
            throw UnraceError(
                .nestedStep,
                "a step was started inside another step's body; use the transaction the body was given"
            )
        }
    }

    /// Runs `body` marked as a step's body.
    public static func inside<T>(_ body: () async throws -> T) async rethrows -> T {
        try await $isInsideStep.withValue(true) { try await body() }
    }
}
