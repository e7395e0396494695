import Synchronization

/// A connection lent by the task that holds its lease to the caller, and given back when the
/// caller is done: the caller waits for it (with a deadline, or until cancelled) while the lease
/// stays with a task of its own. `FluentStore` lends a connection-bound Fluent database,
/// `PostgresStore` a pooled connection.
package final class Loan<Lent: Sendable>: Sendable {
    private struct State {
        var lent: Lent?
        var failure: (any Error)?
        var borrower: CheckedContinuation<Lent, any Error>?
        var lender: CheckedContinuation<Void, Never>?
        var returned = false
    }

    private let state = Mutex(State())

    package init() {}

    /// Lends `lent` and waits until it is given back (at once, if the borrower already stopped
    /// waiting and gave it back).
    package func lend(_ lent: Lent) async {
        await withCheckedContinuation { (lender: CheckedContinuation<Void, Never>) in
            let (borrower, returned) = state.withLock { state -> (CheckedContinuation<Lent, any Error>?, Bool) in
                state.lent = lent
                state.lender = lender
                defer { state.borrower = nil }
                return (state.borrower, state.returned)
            }
            borrower?.resume(returning: lent)
            if returned { giveBack() }
        }
    }

    /// No connection could be leased (or the borrower stopped waiting).
    package func fail(_ error: any Error) {
        let borrower = state.withLock { state -> CheckedContinuation<Lent, any Error>? in
            if state.failure == nil, state.lent == nil { state.failure = error }
            defer { state.borrower = nil }
            return state.borrower
        }
        borrower?.resume(throwing: error)
    }

    /// Waits for what is lent; a cancelled caller stops waiting at once with `CancellationError`
    /// (what is lent later goes straight back once the borrower calls ``giveBack()``).
    package func borrow() async throws -> Lent {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<Lent, any Error>? in
                    if let lent = state.lent { return .success(lent) }
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

    /// Gives back what was lent, or will be: the lease ends. Every borrower calls it, whether
    /// or not ``borrow()`` returned.
    package func giveBack() {
        let lender = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.returned = true
            defer { state.lender = nil }
            return state.lender
        }
        lender?.resume()
    }

    /// Runs `body` with what was lent, then gives it back and waits for `lease` (the task that
    /// lent it) to end, so the connection is back in its pool when this returns.
    package func use<T>(_ lent: Lent, until lease: Task<Void, Never>, _ body: (Lent) async throws -> T) async throws -> T {
        do {
            let result = try await body(lent)
            giveBack()
            await lease.value
            return result
        } catch {
            giveBack()
            await lease.value
            throw error
        }
    }
}
