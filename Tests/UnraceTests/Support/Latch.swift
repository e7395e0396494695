import Synchronization
import Testing
import Unrace

/// A one-shot signal: `open()` once, and every `wait()` — before or after — returns.
final class Latch: Sendable {
    private struct State {
        var open = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    /// Whether it was opened.
    var isOpen: Bool { state.withLock { $0.open } }

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for continuation in waiters { continuation.resume() }
    }

    /// How long a wait lasts at most: past it the test fails (an issue is recorded) and the wait
    /// returns, so a test whose opener failed fails instead of hanging the whole suite.
    static let waitLimit: Duration = .seconds(300)

    func wait() async { await wait(cancellable: false) }

    /// As ``wait()``, with no limit: for a latch whose opener is the waiting test itself, on
    /// every path (a `defer`), however long the test takes.
    func waitForTheTest() async { await wait(cancellable: false, limited: false) }

    /// As ``wait()``, but a cancelled caller stops waiting too: for a handler an in-process test
    /// holds, which a failing test cancels (over a socket the server's handler would not be).
    func waitUnlessCancelled() async { await wait(cancellable: true) }

    private func wait(cancellable: Bool, limited: Bool = true) async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        // Inherits the test's task-locals, so the issue is the waiting test's.
        let limit =
            limited
            ? Task {
                try? await Task.sleep(for: Self.waitLimit)
                guard !Task.isCancelled, let waiter = state.withLock({ $0.waiters.removeValue(forKey: id) }) else { return }
                Issue.record("a latch was not opened within \(Self.waitLimit): whatever was to open it failed or hung")
                waiter.resume()
            } : nil
        defer { limit?.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.open || (cancellable && Task.isCancelled) { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            if cancellable { state.withLock { $0.waiters.removeValue(forKey: id) }?.resume() }
        }
    }
}

/// A store that stops each step named `gatedStep` before it begins, until the test opens its
/// gate — so a test can hold a step "in flight" deterministically. Every other step, and the gated
/// one once open, runs on the real store underneath.
struct GatedStore<Base: Store>: Store {
    typealias Transaction = Base.Transaction
    let base: Base
    let gatedStep: String
    /// Opened by the first gated step when it reaches the gate.
    let arrived = Latch()
    /// Opened by the test to let gated steps through.
    let gate = Latch()
    /// A wrapper answers as the store it wraps.
    var runsStepsConcurrently: Bool { base.runsStepsConcurrently }

    func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<Base.Transaction>) async throws -> T) async throws -> T {
        if "\(step.name)" == gatedStep {
            arrived.open()
            await gate.wait()
        }
        return try await base.step(step, body)
    }

    func withTransaction<T: Sendable>(_ body: (Base.Transaction) async throws -> T) async throws -> T {
        try await base.withTransaction(body)
    }
}

/// What `body` returned or threw: for a party of a `Barrier` that must arrive whatever its step
/// did (one that threw and never arrived would leave the others waiting for ever).
func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

/// Runs `body`, failing the test (instead of hanging the suite) if it takes longer than `limit`.
/// A body that never returns is left behind, cancelled; the test goes on.
func within<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = Race<T>()
    let work = Task { try await body() }
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation)
        Task { race.finish(with: await work.result) }
        Task {
            try? await Task.sleep(for: limit)
            work.cancel()
            race.finish(with: .failure(TimedOut(what: what)))
        }
    }
}

/// The first of two finishers resumes the continuation.
final class Race<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, done: Bool)>((nil, false))

    func start(_ continuation: CheckedContinuation<T, any Error>) { state.withLock { $0.continuation = continuation } }

    func finish(with result: Result<T, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<T, any Error>? in
            guard !state.done, let continuation = state.continuation else { return nil }
            state.done = true
            return continuation
        }
        continuation?.resume(with: result)
    }
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out: \(what)" }
}
