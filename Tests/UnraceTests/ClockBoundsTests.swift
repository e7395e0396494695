import Synchronization
import Testing
import Unrace

/// A clock moved by hand to the end of time cannot make a lease end the moment it begins: a step
/// refuses a reading past `Timestamp.latestReading` before it decides or writes anything, and up
/// to it every lease still holds.
@Suite("Clock readings at the end of time", .timeLimit(.minutes(10)))
struct ClockBoundsTests {
    static func operations<S: Store>(_ store: S, at clock: ManualWallClock) throws -> Operations<S> {
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.lease = .seconds(30)
        return try Operations(store: store, configuration: configuration)
    }

    @Test(
        "a clock at Int64.max is refused with invalid_configuration before anything is decided or written; at the latest reading a lease still holds",
        arguments: storeBackends
    )
    func endOfTime(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.endOfTime(store) }
    }

    static func endOfTime<S: Store>(_ store: S) async throws {
        let end = try operations(store, at: ManualWallClock(start: Timestamp(milliseconds: .max)))
        // Unchecked, `now + lease` saturates at `now`: both claims would acquire the key.
        #expect(await QueueTests.code { _ = try await end.begin(key: "k") } == "invalid_configuration")
        #expect(await QueueTests.code { _ = try await end.begin(key: "k") } == "invalid_configuration")
        let ran = Atomic<Int>(0)
        #expect(
            await QueueTests.code {
                _ = try await end.perform(key: "k") { _ in ran.add(1, ordering: .relaxed).newValue }
            } == "invalid_configuration"
        )
        #expect(ran.load(ordering: .relaxed) == 0, "the body never ran")

        let queueClock = ManualWallClock(start: Timestamp(milliseconds: .max))
        var queueConfiguration = QueueConfiguration()
        queueConfiguration.clock = queueClock
        let queue = try MessageQueue(store: store, name: uniqueName("q"), configuration: queueConfiguration)
        #expect(await QueueTests.code { try await queue.enqueue([OutgoingMessage(id: "m", payload: [1])]) } == "invalid_configuration")
        let reservations = Reservations(store: store, clock: ManualWallClock(start: Timestamp(milliseconds: .max)))
        #expect(try await Reservations(store: store).createResource("seats", capacity: 1))
        #expect(
            await QueueTests.code { _ = try await reservations.placeHold("seats", key: "h", timeToLive: .seconds(60)) }
                == "invalid_configuration"
        )

        // At the latest reading a lease is a lease: the second claim finds the first in progress.
        let latest = try operations(store, at: ManualWallClock(start: Timestamp.latestReading))
        guard case .acquired = try await latest.begin(key: "k") else {
            Issue.record("the first claim at the latest reading did not acquire the key: the refused ones wrote something")
            return
        }
        guard case .inProgress = try await latest.begin(key: "k") else {
            Issue.record("a second claim at the latest reading acquired a key whose lease had just begun")
            return
        }
        #expect(try await MessageQueue(store: store, name: queue.name).depth() == QueueDepth(), "the refused enqueue wrote nothing")
    }

    @Test("a clock past the latest reading refuses every step, even one that never reads the time", arguments: storeBackends)
    func endOfTimeEveryStep(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.endOfTimeEveryStep(store) }
    }

    static func endOfTimeEveryStep<S: Store>(_ store: S) async throws {
        let end = ManualWallClock(start: Timestamp(milliseconds: .max))
        let counter = uniqueName("c")
        let counters = Counters(store: store, clock: end)
        #expect(await QueueTests.code { _ = try await counters.create(counter, value: 1) } == "invalid_configuration")
        #expect(try await Counters(store: store).counter(counter) == nil, "the refused create wrote nothing")
        #expect(try await Counters(store: store).create(counter, value: 5))
        #expect(await QueueTests.code { _ = try await counters.adjust(counter, by: -1) } == "invalid_configuration")
        #expect(try await Counters(store: store).counter(counter)?.value == 5, "the refused adjust wrote nothing")
        #expect(
            await QueueTests.code { _ = try await Reservations(store: store, clock: end).createResource(uniqueName("r"), capacity: 1) }
                == "invalid_configuration"
        )
        let collection = uniqueName("docs")
        _ = try await Records(store: store, collection: collection).create("d", 1)
        #expect(
            await QueueTests.code { _ = try await Records(store: store, collection: collection, clock: end).create("d", 2) }
                == "invalid_configuration"
        )

        let lifecycle = try Lifecycle(initial: "new", terminal: ["done"], transitions: [.init(from: "new", on: "Finish", to: "done")])
        let guardian = try LifecycleGuard(store: store, lifecycle: lifecycle, name: uniqueName("order"), clock: end)
        let ran = Atomic<Int>(0)
        #expect(
            await QueueTests.code { _ = try await guardian.apply("Start", to: "o1") { _, _ in ran.add(1, ordering: .relaxed) } }
                == "invalid_configuration"
        )
        #expect(ran.load(ordering: .relaxed) == 0, "the handler of a rejected event never ran")

        let stream = uniqueName("s")
        let event = try InboxEvent(id: "\(stream)-1", stream: stream, sequence: 1, type: "A")
        _ = try await Inbox(store: store).receive(event) { (_: S.Transaction, _) in .applied }
        var configuration = InboxConfiguration()
        configuration.clock = end
        let late = try Inbox(store: store, configuration: configuration)
        #expect(
            await QueueTests.code { _ = try await late.receive(event) { (_: S.Transaction, _) in .applied } } == "invalid_configuration"
        )
    }

    @Test(
        "a clock near Int64.min: a purge deletes no message younger than its age, and no gap is reported before its timeout",
        arguments: storeBackends
    )
    func startOfTime(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.startOfTime(store) }
    }

    static func startOfTime<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock(start: Timestamp(milliseconds: .min))
        let queue = try QueueTests.queue(store, clock)
        try await queue.enqueue([QueueTests.message("m")])
        for delivery in try await queue.lease(worker: "w") { try await queue.ack(delivery) }
        // `now - age` overflows here; clamped to Int64.min, it matched the message acked 0 ms ago.
        #expect(try await queue.purgeCompleted(olderThan: .seconds(60)) == 0)
        #expect(try await queue.enqueue([QueueTests.message("m")]) == [.alreadyEnqueued], "the acked id is still remembered")

        var configuration = InboxConfiguration()
        configuration.gapTimeout = .seconds(30)
        configuration.clock = clock
        let inbox = try Inbox(store: store, configuration: configuration)
        let stream = uniqueName("gap")
        let event = try InboxEvent(id: "\(stream)-4", stream: stream, sequence: 4, type: "A")
        #expect(try await inbox.receive(event) { _, _ in .applied } == .parked(waitingFor: 1))
        #expect(try await inbox.gaps().filter { $0.stream == stream }.isEmpty, "a gap opened 0 ms ago is young")
    }
}
