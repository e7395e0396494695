import ArgumentParser
import Foundation
import Unrace
import UnraceSQL
import UnraceSimulation

/// Hidden helpers that the multi-process tests start as separate OS processes. They use only
/// the public API, like any other process sharing the database would.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Test helpers: run as a separate process against a shared database.",
        shouldDisplay: false,
        subcommands: [PerformKeys.self, HoldAndHang.self, ConsumeOrders.self, LedgerTransfers.self, ConsumeQueue.self]
    )

    /// Performs keys `0..<keys` in a seeded random order; each performance inserts one row
    /// `(id = key, worker = pid)` into `--table`. Prints `{"performed": N, "replayed": M}`.
    struct PerformKeys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "perform-keys")
        @OptionGroup var database: DatabaseOption
        @Option var scope: String
        @Option var table: String
        @Option var keys: Int
        @Option var seed: UInt64 = 1

        func validate() throws { try checkCount(keys, "--keys") }

        func run() async throws {
            let result = try await withDatabase(database.location, logger: cliLogger("unrace.worker"), Job(command: self))
            print(#"{"performed": \#(result.0), "replayed": \#(result.1)}"#)
        }

        struct Job: StoreJob {
            let command: PerformKeys
            func run<S: SQLStore>(_ store: S) async throws -> (Int, Int) {
                let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
                let scope = try Scope(command.scope)
                var generator = SeededGenerator(seed: command.seed)
                let order = generator.shuffled(Array(0..<command.keys))
                let pid = "\(ProcessInfo.processInfo.processIdentifier)"
                // Four concurrent callers per process, each taking every fourth key of the order.
                return try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                    for lane in 0..<4 {
                        group.addTask {
                            var performed = 0
                            var replayed = 0
                            for index in stride(from: lane, to: order.count, by: 4) {
                                let key = "k\(order[index])"
                                let receipt = try await operations.perform(key: key, scope: scope) { tx in
                                    try await tx.execute(
                                        "INSERT INTO \(command.table) (id, worker, seq) VALUES (?, ?, ?)",
                                        [.text(key), .text(pid), .int(index)]
                                    )
                                    return pid
                                }
                                if receipt.isReplay { replayed += 1 } else { performed += 1 }
                            }
                            return (performed, replayed)
                        }
                    }
                    return try await group.reduce(into: (0, 0)) {
                        $0.0 += $1.0
                        $0.1 += $1.1
                    }
                }
            }
        }
    }

    /// Acquires `--key`, starts completing it with a local write, prints `writing`, and then
    /// blocks inside the open transaction until killed: a worker that crashed mid-operation.
    struct HoldAndHang: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "hold-and-hang")
        @OptionGroup var database: DatabaseOption
        @Option var scope: String
        @Option var table: String
        @Option var key: String
        @Option var leaseSeconds: Int = 60

        func validate() throws {
            guard (1...86_400).contains(leaseSeconds) else { throw ValidationError("--lease-seconds must be between 1 and 86400") }
        }

        func run() async throws {
            try await withDatabase(database.location, logger: cliLogger("unrace.worker"), Job(command: self))
        }

        struct Job: StoreJob {
            let command: HoldAndHang
            func run<S: SQLStore>(_ store: S) async throws {
                let operations = try Operations(
                    store: store,
                    lease: .seconds(command.leaseSeconds),
                    retention: .seconds(3_600)
                )
                guard case .acquired(let handle) = try await operations.begin(key: command.key, scope: Scope(command.scope)) else {
                    throw ValidationError("could not acquire the key")
                }
                FileHandle.standardOutput.write(Data("acquired \(handle.token.value)\n".utf8))
                try await operations.complete(handle, result: "crashed-holder") { tx in
                    try await tx.execute(
                        "INSERT INTO \(command.table) (id, worker, seq) VALUES (?, 'crashed', 1)",
                        [.text(command.key)]
                    )
                    FileHandle.standardOutput.write(Data("writing\n".utf8))
                    _ = readLine()  // blocks until the parent kills this process
                    throw CancellationError()
                }
            }
        }
    }
}

extension WorkerCommand {
    /// Consumes every `lanes`-th delivery of a seeded, shuffled set of order streams through the
    /// inbox, into `SQLOrderProjection(prefix:)` tables the caller created.
    struct ConsumeOrders: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "consume-orders")
        @OptionGroup var database: DatabaseOption
        @Option var prefix: String
        @Option var orders: Int
        @Option var seed: UInt64
        @Option var lane: Int
        @Option var lanes: Int

        func validate() throws {
            try checkCount(orders, "--orders")
            guard (1...64).contains(lanes), (0..<lanes).contains(lane) else {
                throw ValidationError("--lanes must be between 1 and 64 and --lane between 0 and --lanes - 1")
            }
        }

        func run() async throws {
            try await withDatabase(database.location, logger: cliLogger("unrace.worker"), Job(command: self))
        }

        struct Job: StoreJob {
            let command: ConsumeOrders
            func run<S: SQLStore>(_ store: S) async throws {
                let inbox = try Inbox(store: store)
                let projection = SQLOrderProjection(prefix: command.prefix)
                let streams = try OrderStreams.streams(orders: command.orders, seed: command.seed, prefix: command.prefix)
                let deliveries = OrderStreams.deliveries(of: streams, seed: command.seed)
                for index in stride(from: command.lane, to: deliveries.count, by: command.lanes) {
                    _ = try await inbox.receive(deliveries[index]) { tx, event in try await projection.apply(tx, event) }
                }
            }
        }
    }
}

extension WorkerCommand {
    /// Submits the seeded ledger workload (every transfer twice, four lanes) against wallets the
    /// caller created with `prefix`.
    struct LedgerTransfers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ledger-transfers")
        @OptionGroup var database: DatabaseOption
        @Option var prefix: String
        @Option var count: Int
        @Option var seed: UInt64
        @Option var lane: Int

        func validate() throws {
            try checkCount(count, "--count")
            guard lane >= 0 else { throw ValidationError("--lane must be 0 or more") }
        }

        func run() async throws {
            try await withDatabase(database.location, logger: cliLogger("unrace.worker"), Job(command: self))
        }

        struct Job: StoreJob {
            let command: LedgerTransfers
            func run<S: SQLStore>(_ store: S) async throws {
                let ledger = try Ledger(store: store)
                let accounts = (0..<10).map { "\(command.prefix)-w\($0)" }
                let workload = LedgerWorkload.transfers(
                    count: command.count,
                    accounts: accounts,
                    seed: command.seed,
                    prefix: command.prefix
                )
                var generator = SeededGenerator(seed: UInt64(command.lane) &+ 99)
                let transfers = generator.shuffled(workload + workload)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for lane in 0..<4 {
                        group.addTask {
                            for index in stride(from: lane, to: transfers.count, by: 4) {
                                _ = try await ledger.submit([transfers[index]])
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }
}

extension WorkerCommand {
    /// Leases messages of `--queue` in batches until the queue has nothing ready or leased; for
    /// each delivery inserts `(id, worker = pid, seq = attempt)` into `--table` and acks in the
    /// same transaction. Prints `{"handled": N}`.
    struct ConsumeQueue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "consume-queue")
        @OptionGroup var database: DatabaseOption
        @Option var queue: String
        @Option var table: String
        @Option var batch: Int = 10

        func validate() throws {
            guard (1...1_000).contains(batch) else { throw ValidationError("--batch must be between 1 and 1000") }
        }

        func run() async throws {
            let handled = try await withDatabase(database.location, logger: cliLogger("unrace.worker"), Job(command: self))
            print(#"{"handled": \#(handled)}"#)
        }

        struct Job: StoreJob {
            let command: ConsumeQueue
            func run<S: SQLStore>(_ store: S) async throws -> Int {
                let queue = try MessageQueue(store: store, name: command.queue)
                let pid = "\(ProcessInfo.processInfo.processIdentifier)"
                var handled = 0
                while true {
                    let deliveries = try await queue.lease(limit: command.batch, worker: "worker-\(pid)")
                    if deliveries.isEmpty {
                        let depth = try await queue.depth()
                        if depth.ready + depth.leased == 0 { return handled }
                        try await Task.sleep(for: .milliseconds(5))  // another worker holds the rest
                        continue
                    }
                    for delivery in deliveries {
                        try await store.withTransaction { tx in
                            try await tx.execute(
                                "INSERT INTO \(command.table) (id, worker, seq) VALUES (?, ?, ?)",
                                [.text(delivery.id), .text(pid), .integer(delivery.attempt)]
                            )
                            try await queue.ack(delivery, in: tx)
                        }
                        handled += 1
                    }
                }
            }
        }
    }
}

/// The test helpers' counts: 0 to 1,000,000 (a usage error, exit 64, outside).
private func checkCount(_ value: Int, _ option: String) throws {
    guard (0...1_000_000).contains(value) else { throw ValidationError("\(option) must be between 0 and 1000000") }
}
