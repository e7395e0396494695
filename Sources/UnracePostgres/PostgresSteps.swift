import Logging
import NIOCore
package import PostgresNIO
import Synchronization
import Unrace
import UnraceCore
import UnraceSQL

/// How a step runs on a PostgreSQL connection, whoever leased it (``PostgresStore``'s client, or
/// a Fluent database's pool): `BEGIN` … `COMMIT` bounded by the step timeout, a bounded rollback
/// that never sends on a closed connection, a lost `COMMIT` as ``UnraceError/Code/outcomeUnknown``,
/// and whole-step retries of serialization failures, deadlocks and lost insert races.
package struct PostgresSteps: Sendable {
    package let logger: Logger
    package let stepTimeout: Duration
    /// Where the steps' rows land (``PostgresStore/location``), given to their transactions.
    package let owner: String?
    /// The client the steps' connections come from, given to their transactions.
    package let clientID: ObjectIdentifier?

    package init(logger: Logger, stepTimeout: Duration, owner: String? = nil, clientID: ObjectIdentifier? = nil) {
        self.logger = logger
        self.stepTimeout = stepTimeout
        self.owner = owner
        self.clientID = clientID
    }

    /// Runs `attempt` again (with a short jittered pause) after a serialization failure, a
    /// deadlock or a lost insert race on Unrace's tables, at most ``PostgresStore/retryCountMax`` times;
    /// and, at most 5 times, after ``ClosedBeforeUse`` (a connection closed before the step began).
    package func retrying<T>(_ attempt: () async throws -> T) async throws -> T {
        var attempts = 0
        var insertRaces = 0
        var closedConnections = 0
        while true {
            attempts += 1
            do {
                return try await attempt()
            } catch let error as ClosedBeforeUse {
                // A pooled connection that had closed (or closed before the step's BEGIN was
                // answered): nothing of the step ran; another one, at most 5 times, after a pause
                // in which the pool hears that it closed (it may otherwise hand the same one out
                // again).
                closedConnections += 1
                guard closedConnections < 5 else {
                    throw UnraceError(
                        .storeUnavailable,
                        "the PostgreSQL connections the pool handed out were closed",
                        underlying: error.underlying ?? error
                    )
                }
                logger.notice(
                    "step's connection closed before the step began; running it on another",
                    metadata: ["attempt": "\(closedConnections)"]
                )
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

    /// Runs `body` between `BEGIN` (read committed, whatever the database's default) and `COMMIT`
    /// on `connection`, rolling back if it throws or the task is cancelled.
    /// - Parameters:
    ///   - timed: bound it by ``stepTimeout`` (not the schema migration).
    ///   - guard: the step's hold on the connection; a caller whose cancellation is not the
    ///     current task's (the Fluent path) stops the step through it.
    ///   - begin: sends `BEGIN` on the step's connection (the default; a test passes one that
    ///     first has the server end the session).
    /// - Throws: ``ClosedBeforeUse`` when the connection closed before the step's `BEGIN` was
    ///   answered (the server or a proxy ended the session as the step began): nothing of the step
    ///   ran, so ``retrying(_:)`` runs it again on another connection.
    package func transaction<T>(
        on connection: PostgresConnection,
        guard stepGuard: ConnectionGuard? = nil,
        timed: Bool = true,
        begin: (@Sendable (PostgresConnection, Logger) async throws -> Void)? = nil,
        _ body: (PostgresTransaction) async throws -> T
    ) async throws -> T {
        let stepGuard = stepGuard ?? ConnectionGuard(connection)
        return try await bounded(stepGuard, timed: timed) {
            let tx = PostgresTransaction(connection: connection, logger: logger, stepGuard: stepGuard, owner: owner, clientID: clientID)
            do {
                if let begin {
                    let logger = logger
                    try await tx.sending { try await begin(connection, logger) }
                } else {
                    try await tx.execute(SQLDialect.postgres.beginStatement)
                }
            } catch  where connection.isClosed && !stepGuard.isStopped {
                // A pooled connection whose session ended as the step began (HAProxy cutting the
                // sessions of a node it marked down, say): the body never ran. (A server's FATAL
                // answer to BEGIN read before the channel closed fails the step, retryable.)
                throw ClosedBeforeUse(underlying: error)
            }
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
    ///
    /// PostgreSQL answers `COMMIT` of a transaction that an earlier statement's error aborted
    /// with `ROLLBACK` and no error: a body that caught a failed statement and went on has
    /// nothing committed, and the step fails with ``UnraceError/Code/storeFailure`` rather than
    /// report a success that was rolled back.
    /// - Parameter send: sends `COMMIT` on the step's connection and returns the command tag it
    ///   answered (the default; a test passes one that first has the server end the session).
    package func commit(
        _ tx: PostgresTransaction,
        send: (@Sendable (PostgresConnection, Logger) async throws -> String)? = nil
    ) async throws {
        let answer: String
        do {
            answer = try await tx.stepGuard.committing {
                let (connection, logger) = (tx.connection, logger)
                let send = send ?? { connection, logger in try await connection.query("COMMIT", logger: logger).get().metadata.command }
                return try await tx.sending { try await send(connection, logger) }
            }
        } catch  where tx.stepGuard.commitSent && !Self.isServerAnswer(error) {
            throw UnraceError(
                .outcomeUnknown,
                "COMMIT was sent and its answer never came (the connection was lost, or the step was stopped): the step may or may not have committed",
                underlying: error
            )
        }
        guard answer == "COMMIT" else {
            throw UnraceError(
                .storeFailure,
                "PostgreSQL rolled the step back: a statement in it failed and the transaction was aborted (SQLSTATE 25P02), so nothing was committed; catch a failing statement only inside a savepoint",
                detail: "COMMIT answered \(answer)"
            )
        }
    }

    /// How long a step may run, as the event loop counts it: `timeout` to the millisecond (a step
    /// timeout of 1.9 s is 1.9 s, not 1 s).
    package static func deadline(after timeout: Duration) -> TimeAmount { .milliseconds(timeout.wholeMilliseconds) }

    /// Runs `work` on the guarded connection for at most ``stepTimeout``; a cancelled caller is
    /// stopped at once (see ``ConnectionGuard/stop(_:)``: a statement in flight is cut off by
    /// closing the connection, a step between statements sends no more); past the timeout the
    /// connection is closed even between statements, and even after a cancellation, so the
    /// transaction's locks go with it — unless the step's own rollback is already running. Past the timeout the
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
            ? connection.eventLoop.scheduleTask(in: Self.deadline(after: timeout)) {
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
        await awaitClose(stepGuard.connection)
    }

    /// The longest a step waits for its connection's close: a close is local and quick, but a
    /// step never waits on it unbounded (the pool checks a connection it lends anyway).
    static let closeWaitMaximum: Duration = .seconds(1)

    /// Closes `connection` (if it is not already closing) and waits at most ``closeWaitMaximum``
    /// for the close to complete.
    static func awaitClose(_ connection: PostgresConnection) async {
        let closed = Task { try await connection.close().get() }
        _ = await TaskRace.first(of: closed, within: closeWaitMaximum)
    }

    /// Rolls back on a task of its own, which cancellation of the caller cannot skip, waiting at
    /// most ``PostgresStore/rollbackTimeout``. A connection closed, or being closed, needs none:
    /// the server rolls back when it goes, and postgres-nio would never answer a query sent on it.
    func rollback(_ stepGuard: ConnectionGuard) async {
        let connection = stepGuard.connection
        guard !connection.isClosed, stepGuard.beginRollback() else { return }
        let logger = logger
        let rollback = Task.detached {
            try await connection.query("ROLLBACK", logger: logger)
        }
        let finished = await TaskRace.first(of: rollback, within: PostgresStore.rollbackTimeout)
        if case .failure(let error)? = finished {
            // The connection may still be inside the failed transaction: never pool it again.
            logger.warning(
                "rollback after a failed step also failed; closing the connection",
                metadata: ["error": "\(String(reflecting: type(of: error)))"]
            )
            // Closed before the step ends, so the pool never lends it, still closing, to a step
            // whose BEGIN the close would cut off.
            await Self.awaitClose(connection)
        } else if finished == nil {
            logger.warning("rollback after a failed step did not finish in time; closing the connection")
            await Self.awaitClose(connection)
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
