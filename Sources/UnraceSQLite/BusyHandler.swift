import Foundation
import GRDB
import Synchronization

/// A flag the step's cancellation handler sets and the writer's busy handler reads.
final class CancelFlag: Sendable {
    private let value = Atomic<Bool>(false)
    private let waits = Atomic<Int>(0)

    func set() { value.store(true, ordering: .relaxed) }
    func reset() { value.store(false, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }

    /// How many times the busy handler was called: for tests, a sign that a step waits for a lock.
    var busyCalls: Int { waits.load(ordering: .relaxed) }
    func noteBusyCall() { waits.add(1, ordering: .relaxed) }
}

extension SQLiteStore {
    /// SQLite's own waits between retries of a busy lock (its default busy handler's schedule),
    /// in milliseconds; the last repeats.
    static let busyDelays = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100]

    /// How long the first `tries` retries waited, in milliseconds.
    static func busyWaited(tries: Int) -> Int {
        let scheduled = busyDelays.prefix(max(0, tries)).reduce(0, +)
        return scheduled + max(0, tries - busyDelays.count) * busyDelays[busyDelays.count - 1]
    }

    /// The writer's busy handler: waits for another connection's lock as `sqlite3_busy_timeout`
    /// does (the same schedule, up to `timeout`), and gives up at once when `cancelled` is set. A
    /// busy wait ignores `sqlite3_interrupt`, which is all a cancelled GRDB access sends.
    static func busyHandler(timeout: Duration, cancelled: CancelFlag) -> Database.BusyCallback {
        let total = Int(clamping: timeout.wholeMilliseconds)
        return { tries in
            cancelled.noteBusyCall()
            guard !cancelled.isSet else { return false }
            let remaining = total - busyWaited(tries: tries)
            guard remaining > 0 else { return false }
            let delay = min(remaining, busyDelays[min(max(0, tries), busyDelays.count - 1)])
            usleep(UInt32(delay) * 1_000)
            return !cancelled.isSet
        }
    }
}
