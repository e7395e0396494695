import FluentKit
import Logging
import NIOCore
import Synchronization
import Unrace
import UnraceCore

/// Where a step's Fluent database comes from: one database handle, or an application's
/// databases on every event loop of its group.
enum DatabaseSource: Sendable {
    case single(any Database)
    case databases(Loops)

    /// A database for a step: for one handle, always it; for an application's databases, where
    /// writers run at once (PostgreSQL) every loop's in turn, else (SQLite) the first loop's for
    /// writes — the one writer — and the other loops' in turn for reads.
    /// - Throws: ``UnraceCore/UnraceError/Code/storeUnavailable`` once the application's
    ///   databases were shut down (a request still in flight as the application stops).
    func database(writing: Bool, concurrentWriters: Bool) throws -> any Database {
        switch self {
        case .single(let database): database
        case .databases(let loops): try loops.database(writing: writing, concurrentWriters: concurrentWriters)
        }
    }
}

/// An application's databases and the event loops a store's steps take connections on.
final class Loops: Sendable {
    let databases: Databases
    let id: DatabaseID?
    let logger: Logger
    let loops: [any EventLoop]
    private let next = Mutex(0)

    init(databases: Databases, id: DatabaseID?, logger: Logger, loops: [any EventLoop]) {
        self.databases = databases
        self.id = id
        self.logger = logger
        self.loops = loops
    }

    func database(writing: Bool, concurrentWriters: Bool) throws -> any Database {
        let loop: any EventLoop
        if concurrentWriters {
            loop = next.withLock { next in
                next = (next + 1) % loops.count
                return loops[next]
            }
        } else if writing || loops.count == 1 {
            loop = loops[0]
        } else {
            loop = next.withLock { next in
                next = next % (loops.count - 1) + 1
                return loops[next]
            }
        }
        // The databases were checked to have this one when the store was made: only a shutdown
        // takes it away.
        guard let database = databases.database(id, logger: logger, on: loop) else {
            throw UnraceError(.storeUnavailable, "the application's Fluent databases were shut down; nothing was sent")
        }
        return database
    }
}

/// A connection-bound Fluent database lent by the task that holds its lease to the caller, and
/// given back when the caller is done.
final class Loan: Sendable {
    private struct State {
        var database: (any Database)?
        var failure: (any Error)?
        var borrower: CheckedContinuation<any Database, any Error>?
        var lender: CheckedContinuation<Void, Never>?
        var returned = false
    }

    private let state = Mutex(State())

    /// Lends `database` and waits until it is given back.
    func lend(_ database: any Database) async {
        await withCheckedContinuation { (lender: CheckedContinuation<Void, Never>) in
            let (borrower, returned) = state.withLock { state -> (CheckedContinuation<any Database, any Error>?, Bool) in
                state.database = database
                state.lender = lender
                defer { state.borrower = nil }
                return (state.borrower, state.returned)
            }
            borrower?.resume(returning: database)
            if returned { giveBack() }
        }
    }

    /// No connection could be leased (or the borrower stopped waiting).
    func fail(_ error: any Error) {
        let borrower = state.withLock { state -> CheckedContinuation<any Database, any Error>? in
            if state.failure == nil, state.database == nil { state.failure = error }
            defer { state.borrower = nil }
            return state.borrower
        }
        borrower?.resume(throwing: error)
    }

    /// Waits for the lent database; a cancelled caller stops waiting at once with
    /// `CancellationError` (a database lent later goes straight back: see ``giveBack()``).
    func borrow() async throws -> any Database {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<any Database, any Error>? in
                    if let database = state.database { return .success(database) }
                    if let failure = state.failure { return .failure(failure) }
                    state.borrower = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            fail(CancellationError())
        }
    }

    /// Gives the database back: the lease ends.
    func giveBack() {
        let lender = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.returned = true
            defer { state.lender = nil }
            return state.lender
        }
        lender?.resume()
    }
}
