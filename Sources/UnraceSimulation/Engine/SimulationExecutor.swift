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
func onSimulationThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.stackSize = 16 << 20
        thread.start()
    }
}
