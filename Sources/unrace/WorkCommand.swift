import ArgumentParser
import Foundation
import Logging
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite
import UnraceShop

/// `unrace work`: a worker process of the shop's order queue.
struct WorkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "work",
        abstract: "Consume the shop's order queue (capture, then email) with naive or guarded handlers.",
        discussion: """
            Leases the messages `unrace serve` leaves in its outbox, charges each capture at the \
            payment provider and sends each email through the mail API (--provider), records them \
            in shop_effects and moves the merchant's balance, then acks. Run several, on one \
            PostgreSQL database (--database) or one SQLite file (--file); kill them at will: a \
            message whose worker died is delivered again after the visibility timeout. Prints \
            "working as NAME" once it has started; runs until stopped.
            """
    )

    @Option(help: "A postgres:// URL; overrides --file.") var database: String?
    @Option(help: "The SQLite file.") var file = "shop.sqlite"
    @Option(help: "naive: work, then ack, no guard; guarded: through the inbox, once and in order.") var handler: HandlerChoice = .guarded
    @Option(help: "Milliseconds a lease lasts before the message is delivered again (1 to 43200000).") var visibilityMs = 30_000
    @Option(help: "Messages leased at a time (1 to 1000).") var batch = 10
    @Option(help: "The worker's name (default: work-PID).") var name: String?
    @Option(
        help:
            "The payment provider and mail API to call (an `unrace provider`, http://HOST:PORT); default: record effects in shop_effects only."
    )
    var provider: String?

    enum HandlerChoice: String, ExpressibleByArgument, CaseIterable { case naive, guarded }

    func validate() throws {
        guard (1...43_200_000).contains(visibilityMs) else { throw ValidationError("--visibility-ms must be between 1 and 43200000") }
        guard (1...1_000).contains(batch) else { throw ValidationError("--batch must be between 1 and 1000") }
        try checkProvider(provider)
        try checkPostgresURL(database)
        if let name {
            do { _ = try NameRule.workerName.validate(name) } catch let error as UnraceError {
                throw ValidationError("--name: \(error.message)")
            }
        }
    }

    func run() async throws {
        let logger = cliLogger("unrace.work", level: .warning)
        if let database {
            try await PostgresStore.withStore(url: database, logger: logger) { store in try await work(store, logger) }
        } else {
            try await work(try await SQLiteStore(path: file, logger: logger), logger)
        }
    }

    private func work<S: SQLStore>(_ store: S, _ logger: Logger) async throws {
        var configuration = QueueConfiguration()
        configuration.visibilityTimeout = .milliseconds(visibilityMs)
        let name = self.name ?? "work-\(ProcessInfo.processInfo.processIdentifier)"
        let worker = try ShopWorker(
            store: store,
            handler: handler == .naive ? .naive : .guarded,
            name: name,
            configuration: configuration,
            externalSystems: provider,
            logger: logger
        )
        FileHandle.standardOutput.write(Data("working as \(name)\n".utf8))
        try await worker.run(batch: batch)
    }
}

/// `--database` of `serve` and `work`: a `postgres://` URL (a SQLite file is `--file`), else a
/// usage error (exit 64) now rather than a failed start later.
func checkPostgresURL(_ database: String?) throws {
    guard let database else { return }
    guard database.hasPrefix("postgres://") || database.hasPrefix("postgresql://") else {
        throw ValidationError("--database must be a postgres:// URL; a SQLite file is --file")
    }
}

/// `--provider` checked as the shop and its workers will use it: a usage error (exit 64) now, not
/// a worker that dead-letters every capture later.
func checkProvider(_ provider: String?) throws {
    guard let provider else { return }
    do { _ = try ShopConfiguration.providerBase(provider) } catch let error as UnraceError {
        throw ValidationError("--provider: \(error.message) (got \(provider.debugDescription))")
    }
}
