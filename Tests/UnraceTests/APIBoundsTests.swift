import Foundation
import HTTPTypes
import Testing
import Unrace
import UnraceCore
import UnraceHTTP
import UnraceProbe
import UnraceSimulation

/// Values at the ends of their types, passed to the public API, get an answer or a typed error:
/// the process never traps.
@Suite("Public API at the bounds")
struct APIBoundsTests {
    static let huge: [Duration] = [.seconds(UInt64.max), .seconds(1e19), .seconds(Int64.max) + .seconds(1)]

    @Test("whole milliseconds and Timestamp + Duration saturate for durations past Int64.max seconds")
    func durations() {
        for duration in Self.huge {
            #expect(duration.wholeMilliseconds == .max)
            #expect((Duration.zero - duration).wholeMilliseconds == .min)
            #expect(Timestamp(milliseconds: 0) + duration == Timestamp(milliseconds: .max))
            #expect(Timestamp(milliseconds: 0) + (Duration.zero - duration) == Timestamp(milliseconds: .min))
        }
        #expect(Duration.milliseconds(1_500).wholeMilliseconds == 1_500)
        #expect(Duration.nanoseconds(-1_500_000).wholeMilliseconds == -1)
        #expect(Duration.milliseconds(Int64.max).wholeMilliseconds == .max)
        #expect(Duration.milliseconds(Int64.max - 1).wholeMilliseconds == .max - 1)
        #expect(Duration.milliseconds(Int64.min + 1).wholeMilliseconds == .min + 1)
    }

    @Test("configurations and arguments of huge durations are refused with their codes")
    func hugeSettings() async throws {
        let store = MemoryStore()
        for duration in Self.huge {
            for setting in 0..<3 {
                var configuration = OperationsConfiguration()
                switch setting {
                case 0: configuration.lease = duration
                case 1: configuration.retention = duration
                default: configuration.waitPollInterval = duration
                }
                let error = #expect(throws: UnraceError.self) { try Operations(store: store, configuration: configuration) }
                #expect(error?.code == (setting == 0 ? .invalidLease : .invalidConfiguration), "\(String(describing: error))")
            }
            let counters = Counters(store: store)
            let window = await #expect(throws: UnraceError.self) { try await counters.consume("q", limit: 1, window: duration) }
            #expect(window?.code == .invalidArgument)
            let reservations = Reservations(store: store)
            try await reservations.createResource("r", capacity: 1)
            for ttl in [duration, .zero - duration] {
                let error = await #expect(throws: UnraceError.self) { try await reservations.hold("r", key: "k", timeToLive: ttl) }
                #expect(error?.code == .invalidArgument)
            }
        }
    }

    @Test("clocks moved or skewed past the ends of time read the end of time")
    func clocks() {
        #expect(SystemWallClock(offset: .seconds(1e19)).now() == Timestamp(milliseconds: .max))
        let clock = ManualWallClock()
        clock.advance(by: .seconds(UInt64.max))
        #expect(clock.now() == Timestamp(milliseconds: .max))
    }

    @Test("a stored response with a status HTTP cannot send reads as 500")
    func storedStatus() {
        var stored = StoredResponse(HTTPResponse(status: .ok), body: Data())
        for status in [1_000, -1, 0, 42, 99, Int.max] {
            stored.status = status
            #expect(stored.head.status == .internalServerError)
        }
        stored.status = 201
        #expect(stored.head.status == .created)
    }

    @Test("negative and huge counts: a report's examples, a memory store's batch limits, the probe's request budget, a choice's range")
    func counts() async throws {
        let report = HistoryChecker.check([.expect("a"), .effect("a"), .effect("a")])
        #expect(report.text(examples: -1).contains("… and 1 more"))
        let store = MemoryStore()
        let expired = try await store.step(StepInfo("bounds", "", clock: ManualWallClock())) { context in
            try await context.rows.expiredOperations(scope: nil, at: Timestamp(milliseconds: .max), limit: -1)
        }
        #expect(expired.isEmpty)
        var options = ProbeOptions()
        options.concurrency = .max
        #expect(options.requestCountMaximum == .max)
        options.concurrency = 32
        #expect(options.requestCountMaximum == 136)
        var choices = Choices(replaying: [5, 0, .max])
        #expect(choices.inRange(0...Int.max) == 5)
        #expect(choices.inRange(Int.min...Int.max) == .min)
        #expect(choices.inRange(3...3) == 3)
        await Scheduler(tracing: false).point(after: .max)  // outside any actor: nothing to schedule
    }
}

extension APIBoundsTests {
    @Test("update on a record at the largest version fails at once with version_conflict (no retry can land)", arguments: storeBackends)
    func updateAtLargestVersion(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.updateAtLargestVersion(store) }
    }

    static func updateAtLargestVersion<S: Store>(_ store: S) async throws {
        let records = try Records(store: store, collection: uniqueName("largest"), clock: ManualWallClock())
        _ = try await records.create("r", 1)
        let collection = records.collection
        try await store.step(StepInfo("seed", "r", clock: SystemWallClock())) { context in
            var stored = try #require(try await context.rows.record(collection: collection, id: "r", lock: true))
            stored.version = .max
            try await context.rows.saveRecord(stored, isNew: false)
        }
        let error = await #expect(throws: UnraceError.self) { try await records.update("r", as: Int.self) { $0 += 1 } }
        #expect(error?.code == .versionConflict, "\(String(describing: error))")
        #expect(try await records.read("r", as: Int.self)?.value == 1)
    }
}
