import Logging
import NIOCore
public import PostgresNIO
import Synchronization
import Unrace
import UnraceCore

/// How a step runs on a PostgreSQL connection, whoever leased it (``PostgresStore``'s client, or
/// a Fluent database's pool): `BEGIN` … `COMMIT` bounded by the step timeout, a bounded rollback
/// that never sends on a closed connection, a lost `COMMIT` as ``UnraceError/Code/outcomeUnknown``,
/// and whole-step retries of serialization failures, deadlocks and lost insert races.
package struct PostgresSteps: Sendable {
    package let logger: Logger
    package let stepTimeout: Duration

    package init(logger: Logger, stepTimeout: Duration) {
        self.logger = logger
        self.stepTimeout = stepTimeout
    }

    /// Runs `attempt` again (with a short jittered pause) after a serialization failure, a
    /// deadlock or a lost insert race on Unrace's tables, at most ``PostgresStore/retryCountMax`` times.
    package func retrying<T>(_ attempt: () async throws -> T) async throws -> T {
        var attempts = 0
        var insertRaces = 0
        while true {
            attempts += 1
            do {
                return try await attempt()
            } catch let error as UnraceError where Self.isSerializationFailure(error) || Self.isInsertRace(error) {
                if Self.isInsertRace(error) { insertRaces += 1 }
                guard attempts < PostgresStore.retryCountMax, insertRaces < PostgresStore.insertRaceRetryCountMax else {
                    throw UnraceError(
                        .retryLimitReached, "a step kept conflicting with concurrent transactions",
                        detail: "\(attempts) attempts; last SQLSTATE \(error.sqlState ?? "?")", underlying: error
                    )
                }
                logger.notice("step retried after a conflict", metadata: ["sqlstate": "\(error.sqlState ?? "?")", "attempt": "\(attempts)"])
                // A short jittered pause (random per process), so steps that collided do not collide again.
                try await Task.sleep(for: .microseconds(Int.random(in: 0...(200 << min(attempts, 6)))))
            }
        }
    }

    /// Runs `body` between `BEGIN` and `COMMIT` on `connection`, rolling back if it throws or
    /// the task is cancelled.
    /// - Parameter timed: bound it by ``stepTimeout`` (not the schema migration).
    package func transaction<T>(on connection: PostgresConnection, timed: Bool = true, _ body: (PostgresTransaction) async throws -> T) async throws -> T {
        try await bounded(connection, timed: timed) {
            let tx = PostgresTransaction(connection: connection, logger: logger)
            try await tx.execute("BEGIN")
            do {
                let result = try await StepNesting.inside { try await body(tx) }
                try Task.checkCancellation()  // a cancelled caller commits nothing
                try await commit(tx)
                return result
            } catch {
                await rollback(connection)
                throw error
            }
        }
    }

    /// Sends `COMMIT`. A connection lost on the way leaves the outcome unknown: the server may
    /// have committed before it went (on a database that failed over, if the standby had it).
    package func commit(_ tx: PostgresTransaction) async throws {
        do {
            try await tx.execute("COMMIT")
        } catch let error as UnraceError where error.code == .storeUnavailable {
            throw UnraceError(
                .outcomeUnknown, "the connection was lost while COMMIT was on its way: the step may or may not have committed",
                underlying: error
            )
        }
    }

    /// Runs `work` on `connection` for at most ``stepTimeout``: past it, the connection is closed,
    /// which fails the statement in flight (the server rolls back), and the step fails with a
    /// retryable ``UnraceError/Code/storeUnavailable``. A cancelled caller closes the connection
    /// too — postgres-nio does not cancel a statement in flight, and a database that stopped
    /// answering would otherwise keep the caller (and a graceful shutdown) waiting — and gets
    /// `CancellationError`.
    package func bounded<T>(_ connection: PostgresConnection, timed: Bool = true, _ work: () async throws -> T) async throws -> T {
        let expired = Mutex(false)
        let timeout = stepTimeout
        let deadline = timed ? connection.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) {
            expired.withLock { $0 = true }
            connection.close().whenComplete { _ in }
        } : nil
        defer { deadline?.cancel() }
        do {
            return try await withTaskCancellationHandler(operation: work) {
                connection.close().whenComplete { _ in }
            }
        } catch where Task.isCancelled {
            throw CancellationError()
        } catch where expired.withLock({ $0 }) {
            logger.warning("a step took longer than its timeout; its connection was closed", metadata: ["timeout": "\(timeout)"])
            throw UnraceError(
                .storeUnavailable, "PostgreSQL did not finish the step within the step timeout; its connection was closed and nothing was committed",
                detail: "stepTimeout \(timeout)", underlying: error
            )
        }
    }

    /// Rolls back on a task of its own, which cancellation of the caller cannot skip, waiting at
    /// most ``rollbackTimeout``. A connection already closed needs none (the server rolled back
    /// when it went; postgres-nio would never answer a query sent on it).
    func rollback(_ connection: PostgresConnection) async {
        guard !connection.isClosed else { return }
        let logger = logger
        let rollback = Task.detached {
            try await connection.query("ROLLBACK", logger: logger)
        }
        let finished = await Self.first(of: rollback, within: PostgresStore.rollbackTimeout)
        if case .failure(let error)? = finished {
            // The connection may still be inside the failed transaction: never pool it again.
            logger.warning("rollback after a failed step also failed; closing the connection", metadata: ["error": "\(String(reflecting: type(of: error)))"])
            connection.close().whenComplete { _ in }
        } else if finished == nil {
            logger.warning("rollback after a failed step did not finish in time; closing the connection")
            connection.close().whenComplete { _ in }
        }
    }

    /// The result of `task`, or `nil` when it has not finished within `limit` (the task is left
    /// to finish, or not, on its own).
    private static func first<T: Sendable>(of task: Task<T, any Error>, within limit: Duration) async -> Result<T, any Error>? {
        let once = OnceResumption<Result<T, any Error>?>()
        return await withCheckedContinuation { continuation in
            once.set(continuation)
            Task.detached { once.resume(with: await task.result) }
            Task.detached {
                try? await Task.sleep(for: limit)
                once.resume(with: nil)
            }
        }
    }

    /// Serialization failures and deadlocks: retrying the whole step resolves them.
    static func isSerializationFailure(_ error: UnraceError) -> Bool {
        error.sqlState == "40001" || error.sqlState == "40P01"
    }

    /// A unique violation on one of Unrace's own tables: a concurrent step inserted the same key,
    /// stream or account first, and the next attempt finds it.
    static func isInsertRace(_ error: UnraceError) -> Bool {
        guard error.sqlState == "23505" else { return false }
        return (error.underlying as? PSQLError)?.serverInfo?[.tableName]?.hasPrefix("unrace_") ?? false
    }
}

/// A continuation resumed by the first of several callers; the others do nothing.
private final class OnceResumption<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, Never>?, value: T?, done: Bool)>((nil, nil, false))

    func set(_ continuation: CheckedContinuation<T, Never>) {
        let ready = state.withLock { state -> T? in
            if state.done, let value = state.value { return value }
            state.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    func resume(with value: T) {
        let continuation = state.withLock { state -> CheckedContinuation<T, Never>? in
            guard !state.done else { return nil }
            state.done = true
            guard let continuation = state.continuation else {
                state.value = value
                return nil
            }
            state.continuation = nil
            return continuation
        }
        continuation?.resume(returning: value)
    }
}
