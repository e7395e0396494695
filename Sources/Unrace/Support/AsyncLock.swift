import Synchronization

/// A first-come, first-served lock for async code: at most one holder runs at a time, waiters
/// suspend instead of blocking a thread.
///
/// Serialises write transactions on one SQLite connection (and in the memory store): a
/// transaction's body may `await`, and no other transaction may slip its statements in while it
/// does. Waiting is not cancellable; a waiter always gets its turn.
package final class AsyncLock: Sendable {
    private struct State {
        var isLocked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }

    private let state = Mutex(State())

    package init() {}

    package func withLock<T>(_ body: () async throws -> T) async rethrows -> T {
        await lock()
        defer { unlock() }
        return try await body()
    }

    private func lock() async {
        // The uncontended case takes the lock without suspending (and without allocating a
        // continuation); FIFO order holds because a free lock has no waiters.
        let acquired = state.withLock { state -> Bool in
            guard !state.isLocked else { return false }
            state.isLocked = true
            return true
        }
        if acquired { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if state.isLocked {
                    state.waiters.append(continuation)
                    return false
                }
                state.isLocked = true
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    private func unlock() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.head < state.waiters.count else {
                state.isLocked = false
                state.waiters.removeAll(keepingCapacity: true)
                state.head = 0
                return nil
            }
            let next = state.waiters[state.head]
            state.head += 1
            return next  // the lock passes straight to the next waiter
        }
        next?.resume()
    }
}
