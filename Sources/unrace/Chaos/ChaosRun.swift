import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import Unrace
import UnracePostgres
import UnraceShop
import UnraceSimulation

/// A fault run that could not finish (a process that never listened or exited, the time limit):
/// exit 1 with the reason, as the command's help says — not 64, which is a bad option.
struct ChaosFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One fault run: the processes, the clients, the faults, the drain, the history.
struct ChaosRun: Sendable {
    let command: ChaosCommand
    let folder: URL

    static let unitPrice: Int64 = ShopConfiguration().unitPriceCents
    static let initialStock: Int64 = 1_000_000_000

    func run() async throws -> ChaosResult {
        let schema = "chaos_\(UUID().uuidString.prefix(8).lowercased())"
        try await Self.execute(command.database, "CREATE SCHEMA \(schema)")
        let url = command.database + (command.database.contains("?") ? "&" : "?") + "search_path=\(schema)"
        let log = try Self.logFile(folder.appendingPathComponent("processes.log"))
        let processes = ChaosProcesses(executable: Self.executable, log: log)
        setenv(ParentWatch.variable, ParentWatch.valueForChildren, 1)  // children exit if this process dies
        let signals = processes.stopOnSignals()
        defer {
            for signal in signals { signal.cancel() }
            processes.stopAll()
            try? log.close()
        }
        do {
            let result = try await withThrowingTaskGroup(of: ChaosResult?.self) { group in
                group.addTask { try await self.phases(url: url, processes: processes) }
                group.addTask {
                    try await Task.sleep(for: .seconds(command.timeLimitSeconds))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let result = first else {
                    throw ChaosFailure(
                        "the run took longer than --time-limit-seconds \(command.timeLimitSeconds); every process it started was stopped"
                    )
                }
                return result
            }
            processes.stopAll()
            if !command.keep { try await Self.execute(command.database, "DROP SCHEMA \(schema) CASCADE") }
            return result
        } catch {
            processes.stopAll()
            if !command.keep { try? await Self.execute(command.database, "DROP SCHEMA \(schema) CASCADE") }
            throw error
        }
    }

    private func phases(url: String, processes: ChaosProcesses) async throws -> ChaosResult {
        let started = ContinuousClock.now
        // The world outside: the payment provider and mail API every worker calls, and whose log
        // says what was really charged and sent.
        let providerPort = try await processes.startProvider(output: folder.appendingPathComponent("provider.out"))
        let provider = "http://127.0.0.1:\(providerPort)"
        let port = try await processes.startServe(
            [
                "serve", "--database", url, "--port", "0", "--stock", "widget=\(Self.initialStock)", "--max-attempts", "1000",
                "--provider", provider,
            ],
            output: folder.appendingPathComponent("serve.out")
        )
        let workerArguments: @Sendable (Int, Int) -> [String] = { slot, generation in
            [
                "work", "--database", url, "--handler", command.handler.rawValue, "--visibility-ms", "\(command.visibilityMs)",
                "--name", "w\(slot)-\(generation)", "--provider", provider,
            ]
        }
        for slot in 0..<command.workers { try processes.startWorker(slot: slot, arguments: workerArguments) }

        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let base = "http://127.0.0.1:\(port)"
        let completed = ChaosCounter()
        let restartsDone = ChaosCounter()
        let failoversDone = ChaosCounter()
        let outcomes: [ClientOutcome]
        do {
            outcomes = try await withThrowingTaskGroup(of: [ClientOutcome].self) { group in
                let next = ChaosCounter()
                for _ in 0..<command.clients {
                    group.addTask {
                        var mine: [ClientOutcome] = []
                        while !Task.isCancelled {
                            let index = next.increment()
                            guard index < command.operations else { return mine }
                            mine.append(await Self.place(index, client: client, base: base))
                            _ = completed.increment()
                        }
                        return mine
                    }
                }
                // Faults, until every order is answered.
                let faults = Task {
                    await withTaskGroup(of: Void.self) { faults in
                        faults.addTask { await processes.supervise(arguments: workerArguments) }
                        faults.addTask { await processes.killRandomly(every: .milliseconds(command.killEveryMs)) }
                        if let failover = command.failoverCommand {
                            faults.addTask {
                                while completed.value < command.operations / 3 {
                                    guard (try? await Task.sleep(for: .milliseconds(10))) != nil else { return }
                                }
                                if await processes.runShell(failover) { _ = failoversDone.increment() }
                            }
                        }
                        if let restart = command.restartCommand, command.restarts > 0 {
                            faults.addTask {
                                for number in 1...command.restarts {
                                    let threshold = command.operations * number / (command.restarts + 1)
                                    while completed.value < threshold {
                                        guard (try? await Task.sleep(for: .milliseconds(10))) != nil else { return }
                                    }
                                    if await processes.runShell(restart) { _ = restartsDone.increment() }
                                }
                            }
                        }
                        await faults.waitForAll()
                    }
                }
                var all: [ClientOutcome] = []
                for try await part in group { all += part }
                faults.cancel()
                await faults.value
                return all
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        let runSeconds = Self.seconds(ContinuousClock.now - started)
        guard processes.isServing else { throw ChaosFailure("unrace serve exited during the run; see processes.log") }

        // Drain: workers keep running (dead ones are replaced), no more kills.
        let drainStart = ContinuousClock.now
        let supervisor = Task { await processes.supervise(arguments: workerArguments) }
        defer { supervisor.cancel() }
        while true {
            if let outbox = try? await Self.outbox(client: client, base: base), outbox.unsent == 0 { break }
            guard processes.isServing else { throw ChaosFailure("unrace serve exited during the run; see processes.log") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let drainSeconds = Self.seconds(ContinuousClock.now - drainStart)
        supervisor.cancel()
        await supervisor.value
        let external = try await Self.externalLog(client: client, base: provider)
        // After a failover, every acknowledged order's request is sent again with its key, as a
        // client that never saw the answer would: a claim the database kept replays it; a claim
        // it lost runs the order again.
        var ranAgain = 0
        if command.failover != nil {
            ranAgain = try await Self.retryAcknowledged(outcomes, client: client, base: base)
        }
        try? await client.shutdown()
        let shutdownSeconds = processes.stopServe(within: .seconds(60))
        processes.stopAll()

        let history = try await Self.history(url: url, outcomes: outcomes, external: external)
        let path = folder.appendingPathComponent("history.jsonl")
        try Data((history.entries.map { $0.jsonLine() }.joined(separator: "\n") + "\n").utf8).write(to: path)
        let report = HistoryChecker.check(history.entries)
        return ChaosResult(
            handler: command.handler.rawValue,
            operations: command.operations,
            accepted: outcomes.filter { $0.order != nil }.count,
            refused: outcomes.filter { $0.order == nil && $0.status != 0 }.count,
            unanswered: outcomes.filter { $0.status == 0 }.count,
            retries: outcomes.reduce(0) { $0 + $1.retries },
            workers: command.workers,
            kills: processes.kills,
            workerStarts: processes.workerStarts,
            restarts: restartsDone.value,
            deadLetters: history.deadLetters,
            seconds: runSeconds,
            drainSeconds: drainSeconds,
            providerCharges: external.filter { $0.kind == .charge && $0.delivered }.count,
            duplicateCharges: Self.duplicates(.charge, external),
            emailsSent: external.filter { $0.kind == .email && $0.delivered }.count,
            duplicateEmails: Self.duplicates(.email, external),
            absorbedByKeys: external.filter { !$0.delivered }.count,
            failoverMode: command.failover?.rawValue,
            failovers: failoversDone.value,
            acknowledgedButMissing: history.missing,
            ranAgain: ranAgain,
            duplicateEffects: report.duplicateEffects.count,
            serverErrors: outcomes.reduce(0) { $0 + $1.serverErrors },
            longestRequestSeconds: outcomes.map(\.longestSeconds).max() ?? 0,
            shutdownSeconds: shutdownSeconds ?? -1,
            anomalies: .init(
                duplicateEffects: report.duplicateEffects.count,
                lostOperations: report.lostOperations.count,
                unexpectedEffects: report.unexpectedEffects.count,
                imbalances: report.imbalances.count,
                outOfOrder: report.outOfOrder.count
            ),
            history: path.path,
            report: report.text()
        )
    }

    // MARK: Clients

    struct ClientOutcome: Sendable {
        var index: Int
        var quantity: Int64
        var status: Int
        var order: String?
        var retries: Int
        /// The longest one of its requests took.
        var longestSeconds: Double = 0
        /// Answers with a 5xx other than 503.
        var serverErrors: Int = 0
    }

    /// Places order `index`, retrying with the same key until a final answer (or 3 minutes).
    static func place(_ index: Int, client: HTTPClient, base: String) async -> ClientOutcome {
        let quantity = Int64(1 + index % 3)
        let deadline = ContinuousClock.now + .seconds(180)
        var outcome = ClientOutcome(index: index, quantity: quantity, status: 0, order: nil, retries: 0)
        while true {
            let sent = ContinuousClock.now
            let answer = await order(index, quantity: quantity, client: client, base: base)
            outcome.longestSeconds = max(outcome.longestSeconds, seconds(ContinuousClock.now - sent))
            if let (status, text) = answer {
                if status >= 500, status != 503 { outcome.serverErrors += 1 }
                if status == 201 {
                    let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
                    outcome.status = status
                    outcome.order = object?["id"] as? String
                    return outcome
                }
                let retryable = status >= 500 || status == 429 || (status == 409 && text.contains("request_in_progress"))
                if !retryable {
                    outcome.status = status
                    return outcome
                }
            }
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return outcome }
            outcome.retries += 1
            let pause = min(20 << min(outcome.retries, 6), 1_000)
            // A cancelled run (its time limit) stops retrying at once.
            do { try await Task.sleep(for: .milliseconds(Int.random(in: pause / 2...pause))) } catch { return outcome }
        }
    }

    /// One `POST /orders` of order `index` with its key: the status and body, or `nil` when no
    /// answer came (refused, cut, or 30 s without one).
    static func order(_ index: Int, quantity: Int64, client: HTTPClient, base: String) async -> (Int, String)? {
        var request = HTTPClientRequest(url: base + "/orders")
        request.method = .POST
        request.headers.add(name: "Idempotency-Key", value: "\"chaos-\(index)\"")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Client-Id", value: "chaos")
        request.body = .bytes(ByteBuffer(string: #"{"sku":"widget","quantity":\#(quantity)}"#))
        guard let response = try? await client.execute(request, timeout: .seconds(30)),
            let body = try? await response.body.collect(upTo: 1 << 20)
        else { return nil }
        return (Int(response.status.code), String(buffer: body))
    }

    /// Sends every acknowledged order's request again, 16 at a time; returns how many ran again
    /// (answered with another order, not a replay of the acknowledged one).
    static func retryAcknowledged(_ outcomes: [ClientOutcome], client: HTTPClient, base: String) async throws -> Int {
        let acknowledged = outcomes.filter { $0.order != nil }
        let next = ChaosCounter()
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var again = 0
                    while true {
                        let position = next.increment()
                        guard position < acknowledged.count else { return again }
                        let outcome = acknowledged[position]
                        // Retried until it gets an answer (a cut connection, a 503 while failing over).
                        var answer = await order(outcome.index, quantity: outcome.quantity, client: client, base: base)
                        for _ in 0..<20 where answer == nil || answer?.0 == 503 {
                            try await Task.sleep(for: .milliseconds(100))
                            answer = await order(outcome.index, quantity: outcome.quantity, client: client, base: base)
                        }
                        guard let (status, text) = answer else { continue }
                        let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
                        if status == 201, object?["id"] as? String != outcome.order { again += 1 }
                        if status != 201 {
                            FileHandle.standardError.write(Data("chaos: a retried acknowledged order answered \(status)\n".utf8))
                        }
                    }
                }
            }
            return try await group.reduce(0, +)
        }
    }

    struct Outbox: Decodable {
        var messages: Int
        var unsent: Int
        var dead: Int
    }

    static func outbox(client: HTTPClient, base: String) async throws -> Outbox {
        let response = try await client.execute(HTTPClientRequest(url: base + "/outbox"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 16)
        return try JSONDecoder().decode(Outbox.self, from: Data(String(buffer: body).utf8))
    }
}

/// A shared counter.
final class ChaosCounter: Sendable {
    private let atomic = Atomic<Int>(0)
    /// Adds one and returns the value before.
    func increment() -> Int { atomic.add(1, ordering: .relaxed).oldValue }
    var value: Int { atomic.load(ordering: .relaxed) }
}
