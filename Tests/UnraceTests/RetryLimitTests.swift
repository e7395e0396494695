import Foundation
import Testing
import Unrace
import UnraceSQLite

/// A store that runs `before` ahead of every step named `name`, then the step on `inner`: a way to
/// put another writer (or a wait) exactly between two steps of one API call.
struct InterposingStore<Inner: Store>: Store {
    typealias Transaction = Inner.Transaction
    let inner: Inner
    let name: String
    let before: @Sendable () async throws -> Void

    /// A wrapper answers as the store it wraps.
    var runsStepsConcurrently: Bool { inner.runsStepsConcurrently }

    func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<Transaction>) async throws -> T) async throws -> T {
        if "\(step.name)" == name { try await before() }
        return try await inner.step(step, body)
    }

    func withTransaction<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T {
        try await inner.withTransaction(body)
    }

    var backendName: String { inner.backendName }
}

/// The documented retry limits end in `retry_limit_reached`, and documented bounds are refused
/// one step past them (ErrorsAndLimits).
@Suite("Retry limits and bounds", .timeLimit(.minutes(10)))
struct RetryLimitTests {
    @Test(
        "Records.update whose every attempt meets another writer gives up after exactly its attempts with retry_limit_reached; the other writer's value stands",
        arguments: storeBackends
    )
    func recordsGiveUp(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.recordsGiveUp(store) }
    }

    static func recordsGiveUp<S: Store>(_ store: S) async throws {
        let collection = uniqueName("rl")
        let other = try Records(store: store, collection: collection)
        _ = try await other.create("r", 0)
        let interposed = Counter()
        // Another writer lands between each of the update's reads and its write.
        let contended = InterposingStore(inner: store, name: "write") {
            let current = try #require(try await other.read("r", as: Int.self))
            _ = try await other.write("r", current.value + 100, expectedVersion: current.version)
            interposed.increment()
        }
        var retry = RetryPolicy()
        retry.attempts = 3
        retry.initialBackoff = .zero
        retry.maximumBackoff = .zero
        let records = try Records(store: contended, collection: collection, retry: retry, clock: ManualWallClock())
        let error = await #expect(throws: UnraceError.self) { try await records.update("r", as: Int.self) { $0 += 1 } }
        #expect(error?.code == .retryLimitReached && error?.isRetryable == true, "\(String(describing: error))")
        #expect(interposed.value == 3, "three attempts in all")
        #expect(try await other.read("r", as: Int.self)?.value == 300)
    }

    @Test(
        "a ledger whose queue holds queueCapacity transfers refuses the next submission at once with retry_limit_reached",
        arguments: storeBackends
    )
    func ledgerQueueFull(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.ledgerQueueFull(store) }
    }

    static func ledgerQueueFull<S: Store>(_ store: S) async throws {
        let entered = Latch()
        let release = Latch()
        // The first group's step waits here, holding nothing, until released.
        let held = InterposingStore(inner: store, name: "submit") {
            entered.open()
            await release.wait()
        }
        var configuration = LedgerConfiguration()
        configuration.batchSize = 1
        configuration.queueCapacity = 1
        let ledger = try Ledger(store: held, configuration: configuration)
        let p = uniqueName("lq")
        _ = try await ledger.createAccounts([Account(id: "\(p)-a", ledger: 1, code: 1), Account(id: "\(p)-b", ledger: 1, code: 1)])
        func transfer(_ n: Int) -> Transfer { Transfer(id: "\(p)-t\(n)", debit: "\(p)-a", credit: "\(p)-b", amount: 1) }
        let first = Task { try await ledger.submit([transfer(1)]) }
        await entered.wait()
        // The group is taken (out of the queue) and held: one more fits in the queue, the other
        // finds it full. Whichever comes second is refused, at once; the other waits.
        let results = await withTaskGroup(of: Result<[TransferResult], any Error>.self) { group in
            for n in 2...3 {
                group.addTask {
                    do { return .success(try await ledger.submit([transfer(n)])) } catch { return .failure(error) }
                }
            }
            var results = [await group.next()!]
            release.open()
            for await result in group { results.append(result) }
            return results
        }
        let refused = try #require(results.first)
        guard case .failure(let error as UnraceError) = refused else {
            Issue.record("the first answer was not a refusal: \(refused)")
            return
        }
        #expect(error.code == .retryLimitReached)
        if case .success(let created) = results.last { #expect(created == [.created]) } else { Issue.record("\(results)") }
        #expect(try await first.value == [.created])
    }

    @Test(
        "a stored outcome replayed as another type is outcome_decoding_failed, through perform and CompletedOperation.value(as:)",
        arguments: storeBackends
    )
    func outcomeDecoding(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.outcomeDecoding(store) }
    }

    static func outcomeDecoding<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store)
        let key = uniqueName("od")
        #expect(try await operations.perform(key: key) { _ in 42 }.value == 42)
        let replayed = await #expect(throws: UnraceError.self) { _ = try await operations.perform(key: key) { _ in "text" } }
        #expect(replayed?.code == .outcomeDecodingFailed)
        guard case .completed(let completed) = try await operations.status(of: key) else {
            Issue.record("not completed")
            return
        }
        #expect(try completed.value(as: Int.self) == 42)
        let decoded = #expect(throws: UnraceError.self) { _ = try completed.value(as: String.self) }
        #expect(decoded?.code == .outcomeDecodingFailed)
    }

    @Test(
        "sizes: an inbox payload over 1 MiB is invalid_event; an outcome or a record value over 64 MiB as JSON is invalid_argument, nothing stored",
        arguments: [Backend.memory, .sqlite]
    )
    func sizes(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.sizes(store) }
    }

    static func sizes<S: Store>(_ store: S) async throws {
        let limit = InboxEvent.payloadByteCountMaximum
        _ = try InboxEvent(id: "e", stream: "s", sequence: 1, type: "t", payload: [UInt8](repeating: 1, count: limit))
        let event = #expect(throws: UnraceError.self) {
            _ = try InboxEvent(id: "e", stream: "s", sequence: 1, type: "t", payload: [UInt8](repeating: 1, count: limit + 1))
        }
        #expect(event?.code == .invalidEvent)
        // A payload grown after the event was made is refused when it is received.
        var grown = try InboxEvent(id: "e", stream: "s", sequence: 1, type: "t")
        grown.payload = [UInt8](repeating: 1, count: limit + 1)
        let inbox = try Inbox(store: store)
        #expect(await QueueTests.code { _ = try await inbox.receive(grown) { _, _ in .applied } } == "invalid_event")
        #expect(try await inbox.head(of: "s") == 0)

        // The JSON of a string of n bytes is n + 2 bytes.
        let huge = repeatedASCII("x", count: OperationsConfiguration.outcomeByteCountMaximum - 1)
        let operations = try Operations(store: store)
        let key = uniqueName("big")
        #expect(await QueueTests.code { _ = try await operations.perform(key: key) { _ in huge } } == "invalid_argument")
        #expect(try await operations.status(of: key) == .notStarted)
        let records = try Records(store: store, collection: uniqueName("big"))
        #expect(await QueueTests.code { _ = try await records.create("r", huge) } == "invalid_argument")
        #expect(try await records.read("r", as: String.self) == nil)
    }

    @Test("documented bounds are refused one step past them, and accepted at them")
    func bounds() async throws {
        let store = MemoryStore()
        func code(_ body: () throws -> Void) -> String? {
            do {
                try body()
                return nil
            } catch { return (error as? UnraceError)?.code.rawValue ?? "\(error)" }
        }
        var operations = OperationsConfiguration()
        operations.retention = OperationsConfiguration.retentionMaximum
        #expect(code { _ = try Operations(store: store, configuration: operations) } == nil)
        operations.retention = OperationsConfiguration.retentionMaximum + .milliseconds(1)
        #expect(code { _ = try Operations(store: store, configuration: operations) } == "invalid_configuration")
        operations = OperationsConfiguration()
        for (poll, expected) in [
            (Duration.milliseconds(1), nil), (.seconds(10), nil), (.zero, "invalid_configuration"),
            (.milliseconds(10_001), "invalid_configuration"),
        ] {
            operations.waitPollInterval = poll
            #expect(code { _ = try Operations(store: store, configuration: operations) } == expected, "\(poll)")
        }
        for (limit, expected) in [(1, nil), (100_000, nil), (0, "invalid_configuration"), (100_001, "invalid_configuration")] {
            var inbox = InboxConfiguration()
            inbox.parkingLimit = limit
            #expect(code { _ = try Inbox(store: store, configuration: inbox) } == expected, "\(limit)")
        }
        for (timeout, expected) in [
            (Duration.seconds(30 * 86_400), nil), (.seconds(30 * 86_400) + .milliseconds(1), "invalid_configuration"),
        ] {
            var inbox = InboxConfiguration()
            inbox.gapTimeout = timeout
            #expect(code { _ = try Inbox(store: store, configuration: inbox) } == expected, "\(timeout)")
        }
        for (size, capacity, expected) in [
            (8_190, 8_190, nil), (0, 100, "invalid_configuration"), (8_191, 10_000, "invalid_configuration"),
            (10, 9, "invalid_configuration"),
        ] {
            var ledger = LedgerConfiguration()
            ledger.batchSize = size
            ledger.queueCapacity = capacity
            #expect(code { _ = try Ledger(store: store, configuration: ledger) } == expected, "\(size) \(capacity)")
        }
        var wait = LedgerConfiguration()
        wait.batchWait = .milliseconds(101)
        #expect(code { _ = try Ledger(store: store, configuration: wait) } == "invalid_configuration")

        let reservations = Reservations(store: store)
        let hold = await QueueTests.code {
            _ = try await reservations.hold("seat", key: "k", timeToLive: Reservations<MemoryStore>.timeToLiveMaximum + .milliseconds(1))
        }
        #expect(hold == "invalid_argument")
        let counters = Counters(store: store)
        let window = await QueueTests.code {
            _ = try await counters.consume("quota", units: 1, limit: 1, window: Counters<MemoryStore>.windowMaximum + .milliseconds(1))
        }
        #expect(window == "invalid_argument")

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("busy"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var sqlite = SQLiteStore.Configuration()
        sqlite.busyTimeout = .seconds(601)
        #expect(
            await QueueTests.code { _ = try await SQLiteStore(path: folder.path + "/a.sqlite", configuration: sqlite) }
                == "invalid_configuration"
        )
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/a.sqlite"), "nothing was opened")
    }
}
