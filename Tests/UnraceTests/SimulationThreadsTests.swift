import Foundation
import Synchronization
import Testing

@testable import UnraceSimulation

/// Simulation runs compute without a pause on threads of their own: at most one per core runs at
/// once, so concurrent runs cannot take every core from the rest of the process.
@Suite("Simulation threads", .timeLimit(.minutes(10)))
struct SimulationThreadsTests {
    @Test("more concurrent simulation runs than cores: at most one thread per core runs at a time, and every run finishes")
    func boundedThreads() async throws {
        let limit = SimulationThreads.shared.limit
        #expect(limit == max(1, ProcessInfo.processInfo.activeProcessorCount))
        let overlap = Overlap()
        let finished = await withTaskGroup(of: Int.self) { group in
            for run in 0..<(limit * 3) {
                group.addTask {
                    await onSimulationThread {
                        let now = overlap.running.add(1, ordering: .sequentiallyConsistent).newValue
                        overlap.most.max(now, ordering: .sequentiallyConsistent)
                        // Long enough for runs started together to overlap if nothing held them back.
                        usleep(300_000)
                        overlap.running.subtract(1, ordering: .sequentiallyConsistent)
                        return run
                    }
                }
            }
            return await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(finished == Set(0..<(limit * 3)))
        let most = overlap.most.load(ordering: .sequentiallyConsistent)
        #expect(most <= limit && most >= 1, "\(most) ran at once")
    }

    /// How many runs ran at once, and the most that did.
    final class Overlap: Sendable {
        let running = Atomic<Int>(0)
        let most = Atomic<Int>(0)
    }

    @Test("a turn given back goes to the first waiter; the count returns to zero")
    func turns() async throws {
        let threads = SimulationThreads(limit: 2)
        await threads.take()
        await threads.take()
        #expect(threads.counts == (2, 0))
        let third = Task { await threads.take() }
        while threads.counts.waiting < 1 {
            try Task.checkCancellation()
            await Task.yield()
        }
        #expect(threads.counts == (2, 1))
        threads.give()
        await third.value
        #expect(threads.counts == (2, 0))
        threads.give()
        threads.give()
        #expect(threads.counts == (0, 0))
        #expect(SimulationThreads(limit: 0).limit == 1)
    }
}
