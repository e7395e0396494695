import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization
import Unrace
import UnracePostgres
import UnraceShop
import UnraceSimulation

/// `unrace chaos`: the fault run. Real processes, real faults, then the history checker.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract:
            "Fault run: unrace serve and unrace work processes on PostgreSQL, retrying clients, SIGKILLed workers, a database restart; then unrace check.",
        discussion: """
            Starts `unrace serve` and --workers `unrace work` processes on a fresh schema of the \
            PostgreSQL database, sends --operations POST /orders from --clients concurrent clients \
            (each retried with its Idempotency-Key until it gets a final answer), SIGKILLs a random \
            worker every --kill-every-ms and starts a new one, and runs --restart-command (for \
            example `pg_ctl -D DATA restart -m immediate`) --restarts times during the run. When \
            every order is answered it waits for the queue to drain, stops every process it \
            started, writes the history (JSON lines, the format `unrace check` reads) and checks \
            it. Exits 1 when the checker finds an anomaly or an order got no final answer. \
            Loopback only.
            """
    )

    @Option(help: "The postgres:// URL; the run uses a fresh schema in it, dropped afterwards unless --keep.") var database: String
    @Option(help: "Orders to place (10 to 1000000).") var operations = 10_000
    @Option(help: "Worker processes (1 to 32).") var workers = 4
    @Option(help: "naive or guarded worker handlers.") var handler: WorkCommand.HandlerChoice = .guarded
    @Option(help: "Concurrent clients (1 to 256).") var clients = 16
    @Option(help: "Milliseconds between SIGKILLs of a random worker (10 to 60000).") var killEveryMs = 200
    @Option(help: "A shell command that restarts the database, such as `pg_ctl -D DATA restart -m immediate`.") var restartCommand: String?
    @Option(help: "Database restarts during the run, spread evenly (0 to 10; needs --restart-command).") var restarts = 1
    @Option(help: "The workers' visibility timeout in milliseconds (100 to 600000).") var visibilityMs = 1_000
    @Option(
        help:
            "sync or async: --database is a replicated PostgreSQL behind HAProxy whose standby replicates this way; --failover-command fails it over (scripts/chaos --failover sets both up)."
    )
    var failover: FailoverMode?
    @Option(
        help:
            "A shell command that kills the primary and promotes the standby, run once a third of the orders are answered (needs --failover)."
    )
    var failoverCommand: String?
    @Option(help: "Seconds the whole run may take before it is stopped (10 to 86400).") var timeLimitSeconds = 900
    @Option(help: "Where to write the history and logs (default: a new temporary folder).") var output: String?
    @Flag(help: "Keep the run's schema instead of dropping it.") var keep = false
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        guard database.hasPrefix("postgres://") || database.hasPrefix("postgresql://") else {
            throw ValidationError("--database must be a postgres:// URL: the fault run needs processes sharing one server")
        }
        guard (10...1_000_000).contains(operations) else { throw ValidationError("--operations must be between 10 and 1000000") }
        guard (1...32).contains(workers) else { throw ValidationError("--workers must be between 1 and 32") }
        guard (1...256).contains(clients) else { throw ValidationError("--clients must be between 1 and 256") }
        guard (10...60_000).contains(killEveryMs) else { throw ValidationError("--kill-every-ms must be between 10 and 60000") }
        guard (0...10).contains(restarts) else { throw ValidationError("--restarts must be between 0 and 10") }
        guard restarts == 0 || restartCommand != nil else {
            throw ValidationError("--restarts needs --restart-command (or pass --restarts 0)")
        }
        guard (100...600_000).contains(visibilityMs) else { throw ValidationError("--visibility-ms must be between 100 and 600000") }
        guard (10...86_400).contains(timeLimitSeconds) else { throw ValidationError("--time-limit-seconds must be between 10 and 86400") }
        guard (failover == nil) == (failoverCommand == nil) else {
            throw ValidationError("--failover and --failover-command go together")
        }
    }

    enum FailoverMode: String, ExpressibleByArgument, CaseIterable, Codable { case sync, async }

    func run() async throws {
        let folder = URL(
            fileURLWithPath: output
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("unrace-chaos-\(UUID().uuidString.prefix(8).lowercased())")
                .path
        )
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let run = ChaosRun(command: self, folder: folder)
        let result = try await run.run()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(result.text)
        }
        // An order without a final answer has no expectation to check: the run proved nothing
        // about it, so it fails too. So does an acknowledged order the database lost, and a 500.
        if result.anomalies.total > 0 || result.unanswered > 0 || result.acknowledgedButMissing > 0 || result.serverErrors > 0 {
            throw ExitCode(1)
        }
    }
}

/// What a fault run reports.
struct ChaosResult: Codable, Sendable {
    struct Anomalies: Codable, Sendable {
        var duplicateEffects: Int
        var lostOperations: Int
        var unexpectedEffects: Int
        var imbalances: Int
        var outOfOrder: Int
        var total: Int { duplicateEffects + lostOperations + unexpectedEffects + imbalances + outOfOrder }
    }

    var handler: String
    var operations: Int
    var accepted: Int
    var refused: Int
    var unanswered: Int
    var retries: Int
    var workers: Int
    var kills: Int
    var workerStarts: Int
    var restarts: Int
    var deadLetters: Int
    var seconds: Double
    var drainSeconds: Double
    /// Charges the payment provider made (its log's new charges).
    var providerCharges: Int
    /// Charges beyond one per capture: an order charged twice.
    var duplicateCharges: Int
    /// Emails the mail API sent.
    var emailsSent: Int
    /// Emails beyond one per order.
    var duplicateEmails: Int
    /// Requests the external systems answered from an idempotency key instead of acting again.
    var absorbedByKeys: Int
    /// `sync` or `async` when the run failed the database over, else `nil`.
    var failoverMode: String?
    /// How many times the primary was killed and the standby promoted.
    var failovers: Int
    /// Orders a client was told were created (201 with an id) that the database does not hold
    /// after the run: acknowledged commits a failover lost.
    var acknowledgedButMissing: Int
    /// Acknowledged orders whose request, sent again with its key after the run, ran again (a
    /// new order) instead of replaying: the claim the failover lost.
    var ranAgain: Int
    /// Duplicate effects, as in ``Anomalies/duplicateEffects``.
    var duplicateEffects: Int
    /// Answers with a 5xx status other than 503 (retryable conditions are 503 with Retry-After).
    var serverErrors: Int
    /// The longest one HTTP request took, in seconds (every client request is bounded by the
    /// server's step timeout; the client gives up at 30 s).
    var longestRequestSeconds: Double
    /// Seconds `unrace serve` took to exit after SIGTERM at the end of the run.
    var shutdownSeconds: Double
    var anomalies: Anomalies
    var history: String
    var report: String

    var text: String {
        """
        unrace chaos: \(operations) orders, \(workers) \(handler) workers on PostgreSQL
        faults: \(kills) worker kills (SIGKILL), \(workerStarts) worker starts, \(restarts) database restarts
        orders: \(accepted) accepted, \(refused) refused, \(unanswered) unanswered; \(retries) client retries
        run: \(String(format: "%.1f", seconds)) s, then \(String(format: "%.1f", drainSeconds)) s to drain the queue; \(deadLetters) dead letters
        provider: \(providerCharges) charges (\(duplicateCharges) duplicate), \(emailsSent) emails (\(duplicateEmails) duplicate), \(absorbedByKeys) repeats absorbed by idempotency keys
        failover: \(failoverMode.map { "\(failovers) (\($0) replication)" } ?? "none"); \(acknowledgedButMissing) acknowledged orders missing, \(ranAgain) ran again when retried
        liveness: longest request \(String(format: "%.1f", longestRequestSeconds)) s, \(serverErrors) 5xx other than 503, serve stopped \(String(format: "%.2f", shutdownSeconds)) s after SIGTERM
        \(report)
        history: \(history)
        """
    }
}
