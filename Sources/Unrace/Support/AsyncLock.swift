import Synchronization

/// A first-come, first-served lock for async code: at most one holder runs at a time, waiters
/// suspend instead of blocking a thread.
///
/// Serialises write transactions on one SQLite connection (and in the memory store): a
/// transaction's body may `await`, and no other transaction may slip its statements in while it
/// does. A waiter whose task is cancelled leaves the queue at once with `CancellationError`;
/// one that already holds the lock runs its body (which sees the cancellation).
package final class AsyncLock: Sendable {
    private typealias Waiter = (id: UInt64, continuation: CheckedContinuation<Void, any Error>)

    private struct State {
        var isLocked = false
        /// In arrival order from `head`; a cancelled waiter's place is `nil`.
        var waiters: [Waiter?] = []
        var head = 0
        var nextID: UInt64 = 0
        /// Waiters cancelled before they were queued (or after they were handed the lock).
        var cancelled: Set<UInt64> = []
    }

    private let state = Mutex(State())

    package init() {}

    /// How many waiters are queued (cancelled ones not counted): for tests.
    package var queuedCount: Int {
        state.withLock { state in state.waiters[state.head...].reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
    }

    package func withLock<T>(_ body: () async throws -> T) async throws -> T {
        try await lock()
        defer { unlock() }
        return try await body()
    }

    private func lock() async throws {
        // The uncontended case takes the lock without suspending (and without allocating a
        // continuation); FIFO order holds because a free lock has no waiters.
        let id = state.withLock { state -> UInt64? in
            guard state.isLocked else {
                state.isLocked = true
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        defer { state.withLock { _ = $0.cancelled.remove(id) } }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let answer = state.withLock { state -> Result<Void, any Error>? in
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    guard state.isLocked else {
                        state.isLocked = true
                        return .success(())
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let answer { continuation.resume(with: answer) }
            }
        } onCancel: {
            let waiting = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                if let index = state.waiters[state.head...].firstIndex(where: { $0?.id == id }) {
                    defer { state.waiters[index] = nil }
                    return state.waiters[index]?.continuation
                }
                state.cancelled.insert(id)  // not queued yet, or holding the lock already
                return nil
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    private func unlock() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            while state.head < state.waiters.count {
                let waiter = state.waiters[state.head]
                state.head += 1
                if let waiter { return waiter.continuation }  // the lock passes straight to it
            }
            state.isLocked = false
            state.waiters.removeAll(keepingCapacity: true)
            state.head = 0
            return nil
        }
        next?.resume()
    }
}
