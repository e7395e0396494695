import Logging
import NIOCore
package import PostgresNIO
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
        var closedConnections = 0
        while true {
            attempts += 1
            do {
                return try await attempt()
            } catch let error as ClosedBeforeUse {
                // A pooled connection that had closed: nothing was sent; another one, at most 5
                // times, after a pause in which the pool hears that it closed (it may otherwise
                // hand the same one out again).
                closedConnections += 1
                guard closedConnections < 5 else {
                    throw UnraceError(.storeUnavailable, "the PostgreSQL connections the pool handed out were closed", underlying: error)
                }
                attempts -= 1
                try await Task.sleep(for: .milliseconds(10 << closedConnections))
            } catch let error as UnraceError where Self.isSerializationFailure(error) || Self.isInsertRace(error) {
                if Self.isInsertRace(error) { insertRaces += 1 }
                guard attempts < PostgresStore.retryCountMax, insertRaces < PostgresStore.insertRaceRetryCountMax else {
                    throw UnraceError(
                        .retryLimitReached,
                        "a step kept conflicting with concurrent transactions",
                        detail: "\(attempts) attempts; last SQLSTATE \(error.sqlState ?? "?")",
                        underlying: error
                    )
                }
                logger.notice(
                    "step retried after a conflict",
                    metadata: ["sqlstate": "\(error.sqlState ?? "?")", "attempt": "\(attempts)"]
                )
                // A short jittered pause (random per process), so steps that collided do not collide again.
                try await Task.sleep(for: .microseconds(Int.random(in: 0...(200 << min(attempts, 6)))))
            }
        }
    }

    /// Runs `body` between `BEGIN` and `COMMIT` on `connection`, rolling back if it throws or
    /// the task is cancelled.
    /// - Parameters:
    ///   - timed: bound it by ``stepTimeout`` (not the schema migration).
    ///   - guard: the step's hold on the connection; a caller whose cancellation is not the
    ///     current task's (the Fluent path) stops the step through it.
    package func transaction<T>(
        on connection: PostgresConnection,
        guard stepGuard: ConnectionGuard? = nil,
        timed: Bool = true,
        _ body: (PostgresTransaction) async throws -> T
    ) async throws -> T {
        let stepGuard = stepGuard ?? ConnectionGuard(connection)
        return try await bounded(stepGuard, timed: timed) {
            let tx = PostgresTransaction(connection: connection, logger: logger, stepGuard: stepGuard)
            try await tx.execute("BEGIN")
            do {
                let result = try await StepNesting.inside { try await body(tx) }
                try Task.checkCancellation()  // a cancelled caller commits nothing
                try await commit(tx)
                return result
            } catch {
                await rollback(stepGuard)
                throw error
            }
        }
    }

    /// Sends `COMMIT`. A connection lost on the way leaves the outcome unknown: the server may
    /// have committed before it went (on a database that failed over, if the standby had it).
    /// A step stopped (its timeout, a cancellation) while `COMMIT` was in flight is the same: the
    /// close that stopped it may have come after the server committed.
    package func commit(_ tx: PostgresTransaction) async throws {
        do {
            try await tx.stepGuard.committing { try await tx.execute("COMMIT") }
        } catch  where tx.stepGuard.commitSent && !Self.isServerAnswer(error) {
            throw UnraceError(
                .outcomeUnknown,
                "COMMIT was sent and its answer never came (the connection was lost, or the step was stopped): the step may or may not have committed",
                underlying: error
            )
        }
    }

    /// Runs `work` on the guarded connection for at most ``stepTimeout``; a cancelled caller is
    /// stopped at once (see ``ConnectionGuard/stop(_:)``: a statement in flight is cut off by
    /// closing the connection, a step between statements sends no more). Past the timeout the
    /// step fails with a retryable ``UnraceError/Code/storeUnavailable``; cancelled, with
    /// `CancellationError` — either, once `COMMIT` was sent, with ``UnraceError/Code/outcomeUnknown``
    /// instead (the server may have committed). postgres-nio does not cancel a statement in flight: a database that
    /// stopped answering would otherwise keep the caller (and a graceful shutdown) waiting.
    package func bounded<T>(_ stepGuard: ConnectionGuard, timed: Bool = true, _ work: () async throws -> T) async throws -> T {
        let connection = stepGuard.connection
        // A connection a pool handed out that is already closed (a step before it was cut off,
        // the server went): nothing was sent on it, so the step may run again on another.
        guard !connection.isClosed else { throw ClosedBeforeUse() }
        let timeout = stepTimeout
        let deadline =
            timed
            ? connection.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) {
                stepGuard.stop(.timedOut)
            } : nil
        defer { deadline?.cancel() }
        do {
            do {
                let result = try await withTaskCancellationHandler(operation: work) {
                    stepGuard.stop(.cancelled)
                }
                await Self.end(stepGuard)
                return result
            } catch {
                await Self.end(stepGuard)
                throw error
            }
        } catch let error as UnraceError where error.code == .outcomeUnknown {
            throw error  // COMMIT was sent: the caller must not be told that nothing committed
        } catch  where Task.isCancelled || stepGuard.stopReason == .cancelled {
            throw CancellationError()
        } catch  where stepGuard.stopReason == .timedOut {
            logger.warning("a step took longer than its timeout; it was stopped", metadata: ["timeout": "\(timeout)"])
            throw UnraceError(
                .storeUnavailable,
                "PostgreSQL did not finish the step within the step timeout; it was stopped and nothing was committed",
                detail: "stepTimeout \(timeout)",
                underlying: error
            )
        }
    }

    /// Ends the step on its guard (``ConnectionGuard/finish()``), then waits until a connection
    /// the guard is closing has closed: given back to its pool still open, it would be leased by
    /// another step, whose statements the close then cuts off ("the PostgreSQL connection
    /// failed" in a step that did nothing wrong). A close is scheduled 10 ms after a stop, so
    /// this waits about that long.
    static func end(_ stepGuard: ConnectionGuard) async {
        stepGuard.finish()
        guard stepGuard.isClosing else { return }
        try? await stepGuard.connection.closeFuture.get()
    }

    /// Rolls back on a task of its own, which cancellation of the caller cannot skip, waiting at
    /// most ``PostgresStore/rollbackTimeout``. A connection closed, or being closed, needs none:
    /// the server rolls back when it goes, and postgres-nio would never answer a query sent on it.
    func rollback(_ stepGuard: ConnectionGuard) async {
        let connection = stepGuard.connection
        guard !connection.isClosed, !stepGuard.isClosing else { return }
        let logger = logger
        let rollback = Task.detached {
            try await connection.query("ROLLBACK", logger: logger)
        }
        let finished = await Self.first(of: rollback, within: PostgresStore.rollbackTimeout)
        if case .failure(let error)? = finished {
            // The connection may still be inside the failed transaction: never pool it again.
            logger.warning(
                "rollback after a failed step also failed; closing the connection",
                metadata: ["error": "\(String(reflecting: type(of: error)))"]
            )
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

    /// Whether `error` is the server's own answer to a statement (an error it reported): the
    /// statement did not take effect. Anything else after `COMMIT` was sent leaves the outcome
    /// unknown.
    static func isServerAnswer(_ error: any Error) -> Bool {
        ((error as? UnraceError)?.underlying as? PSQLError)?.code == .server
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
final class OnceResumption<T: Sendable>: Sendable {
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

/// The pool handed out a connection that had already closed; nothing was sent on it.
package struct ClosedBeforeUse: Error {}

/// A step's hold on its connection, through which a deadline or a cancellation stops it
/// without ever leaving a statement unanswered.
///
/// A step is stopped in one of two ways: a statement in flight is cut off by closing the
/// connection (10 ms after the stop); a step between statements is only marked, and sends nothing
/// more (its next statement throws, and its rollback runs on the open connection).
///
/// postgres-nio 1.33 never answers a statement written to a channel that closed before the
/// statement reached it, and a statement can lose the CPU between passing the guard and being
/// written, so the close can overtake it. Each statement therefore runs on a task of its own, and
/// the step waits for its answer or — once the guard's close has completed — 100 ms more
/// (``abandonGrace``), then gives it up. This covers the statements sent through ``send(_:)``
/// (Unrace's own, a body's `execute`, `query` and `run`, and the Fluent store's Fluent statements).
/// A statement answered after the close was decided fails, so the body is told the step is over
/// before it can send another: one it wrote on the connection directly would not be covered.
/// After the step (``finish()``), nothing more is sent: a handle that escaped its body would
/// otherwise send on a connection that may be another step's.
package final class ConnectionGuard: Sendable {
    /// Why a step was stopped.
    package enum StopReason: Sendable, Equatable {
        case cancelled, timedOut
    }

    private struct State {
        var stop: StopReason?
        var inFlight = 0
        var closing = false
        var finished = false
        var committing = false
        var commitSent = false
        /// Statements sent and not answered yet: how to give up on each.
        var waiting: [Int: @Sendable (any Error) -> Void] = [:]
        var nextStatement = 0
    }

    package let connection: PostgresConnection
    private let state = Mutex(State())

    package init(_ connection: PostgresConnection) { self.connection = connection }

    /// Why the step was stopped, if it was.
    package var stopReason: StopReason? { state.withLock { $0.stop } }
    /// Whether the step was stopped.
    package var isStopped: Bool { stopReason != nil }
    /// Whether the connection is being closed (no rollback then).
    package var isClosing: Bool { state.withLock { $0.closing } }

    /// Sends one statement with `work`, unless the step was stopped or the connection closed.
    ///
    /// The statement runs on a task of its own, and the step waits for its answer — or, once the
    /// guard has closed the connection to stop the step, for that close and
    /// ``abandonGrace`` more: a statement the close overtook on its way to the channel is never
    /// answered by postgres-nio 1.33 (nothing fails its promise), and waiting on it would hang
    /// the step, and a graceful shutdown with it. Such a statement's task is left suspended.
    package func send<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let answer = OnceResumption<Result<T, any Error>>()
        // Registered as waiting in the same critical section that counts it in flight: a close
        // decided from then on always finds it.
        let statement = try state.withLock { state in
            guard !state.finished else { throw UnraceError.stepEnded }
            if let stop = state.stop {
                throw stop == .cancelled
                    ? UnraceError(.storeUnavailable, "the step was cancelled; nothing more was sent")
                    : UnraceError(.storeUnavailable, "the step took longer than its timeout; nothing more was sent")
            }
            guard !connection.isClosed else {
                throw UnraceError(.storeUnavailable, "the PostgreSQL connection was lost; nothing more was sent on it")
            }
            state.inFlight += 1
            if state.committing { state.commitSent = true }
            state.nextStatement += 1
            state.waiting[state.nextStatement] = { answer.resume(with: .failure($0)) }
            return state.nextStatement
        }
        let run: @Sendable () async -> Void = {
            do { answer.resume(with: .success(try await work())) } catch { answer.resume(with: .failure(error)) }
        }
        // Started at once where the runtime allows it, which shortens the window in which the
        // close can overtake the statement's write.
        #if compiler(>=6.2)
        if #available(macOS 26, iOS 26, tvOS 26, watchOS 26, visionOS 26, *) {
            Task.immediate { await run() }
        } else {
            Task { await run() }
        }
        #else
        Task { await run() }
        #endif
        let result = await withCheckedContinuation { answer.set($0) }
        // No longer in flight, in the same critical section that asks whether a close was decided
        // while it was: answered (or failed) in the moment between a stop and the close it
        // decided, the statement's answer goes unused, so the body sends nothing more on a
        // connection about to close under it (a statement written on the connection directly
        // could be overtaken by the close and never be answered). A `COMMIT`'s answer is the
        // step's outcome, and is kept.
        let closing = state.withLock { state -> Bool in
            state.inFlight -= 1
            state.waiting[statement] = nil
            return state.closing && !state.committing
        }
        if closing {
            let underlying: (any Error)? = if case .failure(let error) = result { error } else { nil }
            throw UnraceError(
                .storeUnavailable,
                "the step was stopped while this statement ran; its connection is being closed",
                underlying: underlying
            )
        }
        return try result.get()
    }

    /// How long after the guard's close a statement still unanswered is given up: 100 ms. The
    /// close fails every statement postgres-nio had received at once; what is left never reached it.
    package static let abandonGrace: TimeAmount = .milliseconds(100)

    /// Gives up on every statement still waiting, after the guard closed the connection. Their
    /// tasks stay suspended (nothing will ever answer them); each is logged.
    private func abandonWaiting() {
        let waiting = state.withLock { state -> [@Sendable (any Error) -> Void] in
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        let error = UnraceError(.storeUnavailable, "the step was stopped and its connection closed before this statement was answered")
        Self.abandoned.withLock { $0 += waiting.count }
        for giveUp in waiting { giveUp(error) }
    }

    /// How many statements were given up so far, in this process: each left a task suspended.
    package static var abandonedStatementCount: Int { abandoned.withLock { $0 } }
    private static let abandoned = Mutex(0)

    /// Runs `work`, whose statement is the step's `COMMIT`: once it passes ``send(_:)``, the
    /// step's outcome is the server's (``commitSent``).
    package func committing<T>(_ work: () async throws -> T) async throws -> T {
        state.withLock { $0.committing = true }
        defer { state.withLock { $0.committing = false } }
        return try await work()
    }

    /// Whether the step's `COMMIT` was handed to the connection: a failure after it leaves the
    /// outcome unknown.
    package var commitSent: Bool { state.withLock { $0.commitSent } }

    /// Stops the step (the first reason wins); closes the connection if a statement is in flight.
    package func stop(_ reason: StopReason) {
        let close = state.withLock { state -> Bool in
            guard state.stop == nil, !state.finished else { return false }
            state.stop = reason
            guard state.inFlight > 0 else { return false }
            state.closing = true
            return true
        }
        guard close else { return }
        let connection = connection
        connection.eventLoop.scheduleTask(in: .milliseconds(10)) {
            connection.close().whenComplete { _ in
                connection.eventLoop.scheduleTask(in: Self.abandonGrace) { self.abandonWaiting() }
            }
        }
    }

    /// The step is over: later stops do nothing (the connection may be another step's by then),
    /// and nothing more is sent. A statement still in flight (one a body started and did not
    /// await) closes the connection, so the pool never hands it, still busy, to the next step.
    package func finish() {
        let close = state.withLock { state -> Bool in
            state.finished = true
            guard state.inFlight > 0, !state.closing else { return false }
            state.closing = true
            return true
        }
        guard close else { return }
        let connection = connection
        connection.close().whenComplete { _ in
            connection.eventLoop.scheduleTask(in: Self.abandonGrace) { self.abandonWaiting() }
        }
    }
}
