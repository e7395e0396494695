import Synchronization

/// A continuation resumed by the first of several callers; the others do nothing.
package final class OnceResumption<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, Never>?, value: T?, done: Bool)>((nil, nil, false))

    package init() {}

    package func set(_ continuation: CheckedContinuation<T, Never>) {
        let ready = state.withLock { state -> T? in
            if state.done, let value = state.value { return value }
            state.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    package func resume(with value: T) {
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

/// Waiting for a task without being held by it.
package enum TaskRace {
    /// The result of `task`, or `nil` when it has not finished within `limit` — or, with
    /// `orCancellation`, when the caller was cancelled first (the task is left to finish, or not,
    /// on its own).
    package static func first<T: Sendable>(
        of task: Task<T, any Error>,
        within limit: Duration,
        orCancellation: Bool = false
    ) async -> Result<T, any Error>? {
        let once = OnceResumption<Result<T, any Error>?>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                once.set(continuation)
                Task.detached { once.resume(with: await task.result) }
                Task.detached {
                    try? await Task.sleep(for: limit)
                    once.resume(with: nil)
                }
            }
        } onCancel: {
            if orCancellation { once.resume(with: nil) }
        }
    }
}
