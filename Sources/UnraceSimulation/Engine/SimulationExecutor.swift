import Foundation
import Synchronization

/// A task executor that runs every job of a simulated run on one thread, in FIFO order.
///
/// The ``Scheduler`` already decides which simulated actor runs; this executor makes handing
/// the baton over cheap (a queue push, no thread wake-up) and keeps a run on one core, as the
/// simulator's speed target is stated. Jobs arriving from other threads (none are expected)
/// are still accepted and run in arrival order.
final class SimulationExecutor: TaskExecutor, @unchecked Sendable {
    private struct Queue {
        var jobs: [UnownedJob] = []
        var head = 0
        var stopped = false
        /// The runner is (about to be) waiting for a job: only then does enqueueing signal.
        var sleeping = false
    }

    /// How long the run loop waits for a job before it calls the run stalled.
    static let stallLimit: TimeInterval = 60

    private let queue = Mutex(Queue())
    private let wakeUp = NSCondition()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // The job may be the run's last: once it is queued, the run can end and free this
        // executor before a caller on another thread signals. The runtime holds executors
        // unowned, so take a reference of our own until then.
        let retained = Unmanaged.passRetained(self)
        defer { retained.release() }
        let sleeping = queue.withLock { queue in
            queue.jobs.append(job)
            return queue.sleeping
        }
        if sleeping { signal() }
    }

    private func signal() {
        wakeUp.lock()
        wakeUp.signal()
        wakeUp.unlock()
    }

    /// Runs jobs on the calling thread until ``stop()``.
    func runUntilStopped() {
        while true {
            let next = queue.withLock { queue -> (UnownedJob?, Bool) in
                guard queue.head < queue.jobs.count else {
                    queue.jobs.removeAll(keepingCapacity: true)
                    queue.head = 0
                    return (nil, queue.stopped)
                }
                let job = queue.jobs[queue.head]
                queue.head += 1
                return (job, false)
            }
            if let job = next.0 {
                job.runSynchronously(on: asUnownedTaskExecutor())
            } else if next.1 {
                return
            } else {
                wakeUp.lock()
                let idle = queue.withLock { queue in
                    queue.sleeping = queue.head >= queue.jobs.count && !queue.stopped
                    return queue.sleeping
                }
                // Every job of a run is enqueued from this thread, so an empty queue with the
                // run unfinished means a simulated actor awaited something that is not a
                // scheduling point (the run cannot go on): fail loudly instead of hanging.
                if idle, !wakeUp.wait(until: Date(timeIntervalSinceNow: Self.stallLimit)) {
                    preconditionFailure(
                        "simulation stalled: no job for \(Int(Self.stallLimit)) s — a simulated actor awaited something other than a scheduling point"
                    )
                }
                queue.withLock { $0.sleeping = false }
                wakeUp.unlock()
            }
        }
    }

    func stop() {
        queue.withLock { $0.stopped = true }
        signal()
    }

    /// Runs `body` with this executor preferred, on the calling thread, and returns its result.
    /// The calling thread is blocked for the whole run: call it from a thread of your own.
    static func run<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let executor = SimulationExecutor()
        let result = Mutex<T?>(nil)
        Task(executorPreference: executor) {
            let value = await body()
            result.withLock { $0 = value }
            executor.stop()
        }
        executor.runUntilStopped()
        return result.withLock { $0! }
    }
}

/// Runs blocking simulator work on a thread of its own, so the caller's executor stays free.
///
/// At most ``SimulationThreads/limit`` such threads run at once in a process (one per core);
/// later callers wait, suspended, for a turn. A run computes without a pause, so unbounded
/// concurrent callers (a test suite's parallel cases, sweeps started together) would take the
/// cores from every other thread of the process: its task pool and I/O would stall for seconds.
func onSimulationThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await SimulationThreads.shared.take()
    return await withCheckedContinuation { continuation in
        let thread = Thread {
            let result = work()
            SimulationThreads.shared.give()
            continuation.resume(returning: result)
        }
        thread.stackSize = 16 << 20
        thread.start()
    }
}

/// The turns of ``onSimulationThread(_:)``: a counting semaphore whose waiters suspend, first
/// come first served.
final class SimulationThreads: Sendable {
    /// One turn per core the process may use (at least one).
    static let shared = SimulationThreads(limit: max(1, ProcessInfo.processInfo.activeProcessorCount))

    private struct State {
        var running = 0
        /// In arrival order; as long as the callers waiting (a few per core at most in practice).
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    /// How many simulation threads may run at once.
    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(1, limit) }

    /// How many threads run now, and how many callers wait (tests).
    var counts: (running: Int, waiting: Int) { state.withLock { ($0.running, $0.waiting.count) } }

    /// Takes a turn, waiting for one to be given back when all are taken.
    func take() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.running < limit else {
                    state.waiting.append(continuation)
                    return false
                }
                state.running += 1
                return true
            }
            if now { continuation.resume() }
        }
    }

    /// Gives a turn back: to the first waiter, if any (the turn passes on: `running` stays).
    func give() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
