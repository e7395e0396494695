import Logging
import NIOCore
package import PostgresNIO
import Synchronization
import Unrace
import UnraceCore

/// The pool handed out a connection that had already closed, or that closed before the step's
/// `BEGIN` was answered: nothing of the step ran, and it may run again on another connection.
package struct ClosedBeforeUse: Error {
    /// What the closed connection answered, if anything (a `BEGIN`'s error).
    package var underlying: (any Error)?
    package init(underlying: (any Error)? = nil) { self.underlying = underlying }
}

/// A step's hold on its connection, through which a deadline or a cancellation stops it
/// without ever leaving a statement unanswered.
///
/// A step is stopped in one of two ways: a statement in flight is cut off by closing the
/// connection (10 ms after the stop); a step cancelled between statements is only marked, and
/// sends nothing more (its next statement throws, and its rollback runs on the open connection).
/// A step past its timeout has its connection closed even between statements (unless its
/// rollback is already running): a body waiting on something else would otherwise keep the
/// transaction, and its locks, for as long as it waits.
///
/// postgres-nio 1.33 never answers a statement written to a channel that closed before the
/// statement reached it, and a statement can lose the CPU between passing the guard and being
/// written, so the close can overtake it — the guard's own close, or any other (the server or a
/// proxy ending the session, as a failover does). Each statement therefore runs on a task of its
/// own, and the step waits for its answer or — once the connection's close has completed, whoever
/// closed it (see ``CloseWatch``) — 100 ms more (``abandonGrace``), then gives it up. This covers the statements sent through ``send(_:)``
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
        var rollingBack = false
        /// The connection is closed when the step ends rather than given back to the pool.
        var discard = false
        /// Statements sent and not answered yet: how to give up on each.
        var waiting: [Int: @Sendable (any Error) -> Void] = [:]
        var nextStatement = 0
    }

    package let connection: PostgresConnection
    private let state = Mutex(State())

    package init(_ connection: PostgresConnection) {
        self.connection = connection
        CloseWatch.watch(connection, for: self)
    }

    /// Why the step was stopped, if it was.
    package var stopReason: StopReason? { state.withLock { $0.stop } }
    /// Whether the step was stopped.
    package var isStopped: Bool { stopReason != nil }
    /// Whether the connection is being closed (no rollback then).
    package var isClosing: Bool { state.withLock { $0.closing } }

    /// Sends one statement with `work`, unless the step was stopped or the connection closed.
    ///
    /// The statement runs on a task of its own, and the step waits for its answer — or, once the
    /// connection has closed (the guard stopping the step, or anything else), for that close and
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

    /// How long after the connection's close a statement still unanswered is given up: 100 ms. The
    /// close fails every statement postgres-nio had received at once; what is left never reached it.
    package static let abandonGrace: TimeAmount = .milliseconds(100)

    /// Gives up on every statement still waiting, ``abandonGrace`` after the connection closed
    /// (``CloseWatch`` calls it for every close): closed by the guard (stopping or ending the
    /// step), or by anything else — the server or a proxy ending the session, a failover, a close
    /// outside the step. Their tasks stay suspended (nothing will ever answer them); each is counted.
    fileprivate func abandonWaiting() {
        let (waiting, byGuard) = state.withLock { state -> ([@Sendable (any Error) -> Void], Bool) in
            defer { state.waiting = [:] }
            return (Array(state.waiting.values), state.closing)
        }
        guard !waiting.isEmpty else { return }
        let error =
            byGuard
            ? UnraceError(.storeUnavailable, "the step was stopped and its connection closed before this statement was answered")
            : UnraceError(
                .storeUnavailable,
                "the PostgreSQL connection closed (not by this step) before this statement was answered"
            )
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

    /// The step's rollback starts: a timeout from now on leaves the connection to it (the rollback
    /// is bounded on its own). `false` when the connection is closing already (no rollback needed).
    package func beginRollback() -> Bool {
        state.withLock { state in
            guard !state.closing else { return false }
            state.rollingBack = true
            return true
        }
    }

    /// Whether the step's `COMMIT` was handed to the connection: a failure after it leaves the
    /// outcome unknown.
    package var commitSent: Bool { state.withLock { $0.commitSent } }

    /// Stops the step (the first reason wins); closes the connection if a statement is in flight,
    /// or if the step ran out of time: a body awaiting something else between statements would
    /// otherwise keep its transaction open, and its row locks held, for as long as it waits. The
    /// server rolls back when the connection goes.
    package func stop(_ reason: StopReason) {
        let close = state.withLock { state -> Bool in
            guard !state.finished, !state.closing else { return false }
            let first = state.stop == nil
            if first { state.stop = reason }  // the first reason is the step's error
            // A statement in flight is cut off at the first stop; past the timeout the connection
            // goes whatever stopped the step first — a cancelled body may wait on, holding locks —
            // unless its rollback is running (it ends the transaction itself, within its bound).
            let timedOutBetweenStatements = reason == .timedOut && !state.rollingBack
            guard (first && state.inFlight > 0) || timedOutBetweenStatements else { return false }
            state.closing = true
            return true
        }
        guard close else { return }
        let connection = connection
        // Its close watch gives up what the close leaves unanswered.
        connection.eventLoop.scheduleTask(in: .milliseconds(10)) { let _: EventLoopFuture<Void> = connection.close() }
    }

    /// Closes the connection when the step ends instead of giving it back: postgres-nio keeps a
    /// prepared statement's failed preparation on the connection and answers every later use of
    /// the statement with that error, without sending it.
    package func discardWhenFinished() {
        state.withLock { $0.discard = true }
    }

    /// The step is over: later stops do nothing (the connection may be another step's by then),
    /// and nothing more is sent. A statement still in flight (one a body started and did not
    /// await) closes the connection, so the pool never hands it, still busy, to the next step;
    /// so does ``discardWhenFinished()``.
    package func finish() {
        let close = state.withLock { state -> Bool in
            state.finished = true
            guard state.inFlight > 0 || state.discard, !state.closing else { return false }
            state.closing = true
            return true
        }
        guard close else { return }
        let _: EventLoopFuture<Void> = connection.close()  // its close watch gives up what the close leaves unanswered
    }
}

/// Per connection, the step on it now, told when the connection closes whoever closed it: the
/// step's own guard (a stop, a step ended with a statement in flight), the server ending the
/// session, a proxy cutting it (HAProxy's `shutdown-sessions` when a node is marked down), a
/// failover. The one place statements are given up. A statement written after a close is never answered by
/// postgres-nio 1.33 (it writes with no promise, so nothing fails the statement's), and the step
/// would otherwise wait for its timeout: ``ConnectionGuard/abandonGrace`` after the close, the
/// step's statements still waiting are given up with a retryable
/// ``UnraceCore/UnraceError/Code/storeUnavailable`` (a `COMMIT`'s, with
/// ``UnraceCore/UnraceError/Code/outcomeUnknown``).
///
/// One watch per open connection, not per step: a pooled connection lives for many steps, and a
/// close callback cannot be removed once added.
private final class CloseWatch: Sendable {
    private struct Current {
        weak var stepGuard: ConnectionGuard?
    }

    private let current = Mutex(Current())
    private static let watches = Mutex<[ObjectIdentifier: CloseWatch]>([:])

    /// Makes `stepGuard` the step told when `connection` closes. The first step on a connection
    /// adds the connection's close callback; the callback keeps the connection (so its identifier
    /// is not reused while the entry stands) and removes the entry.
    static func watch(_ connection: PostgresConnection, for stepGuard: ConnectionGuard) {
        let id = ObjectIdentifier(connection)
        let (watch, added) = watches.withLock { watches -> (CloseWatch, Bool) in
            if let watch = watches[id] { return (watch, false) }
            let watch = CloseWatch()
            watches[id] = watch
            return (watch, true)
        }
        watch.current.withLock { $0.stepGuard = stepGuard }
        guard added else { return }
        connection.closeFuture.whenComplete { _ in
            watches.withLock { _ = $0.removeValue(forKey: id) }
            let stepGuard = watch.current.withLock { $0.stepGuard }
            guard let stepGuard else { return }
            // What postgres-nio had received, it fails at the close; what is left after this
            // never reached it.
            connection.eventLoop.scheduleTask(in: ConnectionGuard.abandonGrace) { stepGuard.abandonWaiting() }
        }
    }
}
