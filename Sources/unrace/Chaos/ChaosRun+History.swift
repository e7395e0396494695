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

/// The run's history as the checker reads it, and the helpers the run shares.
extension ChaosRun {
    /// Every request the external systems took, in their order.
    static func externalLog(client: HTTPClient, base: String) async throws -> [ExternalEvent] {
        struct Log: Decodable { var events: [ExternalEvent] }
        let response = try await client.execute(HTTPClientRequest(url: base + "/log"), timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 1 << 30)
        return try JSONDecoder().decode(Log.self, from: Data(String(buffer: body).utf8)).events
    }

    /// Deliveries beyond the first per operation: charges (or emails) made twice.
    static func duplicates(_ kind: ExternalEvent.Kind, _ events: [ExternalEvent]) -> Int {
        let delivered = events.filter { $0.kind == kind && $0.delivered }
        return delivered.count - Set(delivered.map { $0.operation ?? $0.id }).count
    }

    /// The history: what clients asked and got, what accepted orders imply, what the store
    /// holds, and what the external systems did — a charge or an email is an effect only when the
    /// provider's own log says it charged or sent (a request its key absorbed is not).
    static func history(
        url: String,
        outcomes: [ClientOutcome],
        external: [ExternalEvent]
    ) async throws -> (entries: [HistoryEntry], deadLetters: Int, missing: Int) {
        var entries: [HistoryEntry] = []
        for outcome in outcomes.sorted(by: { $0.index < $1.index }) {
            let operation = outcome.order.map { "order:\($0)" } ?? "order:request-\(outcome.index)"
            let changes: [String: Int64] = outcome.order == nil ? [:] : ["stock:widget": -outcome.quantity]
            entries.append(.request(operation, status: outcome.status, changes: changes, actor: "client"))
            if let order = outcome.order {
                entries.append(.expect(ShopTask.capture.operation(order: order), changes: ["merchant": outcome.quantity * unitPrice]))
                entries.append(.expect(ShopTask.email.operation(order: order)))
            }
        }
        return try await PostgresStore.withStore(url: url, logger: cliLogger("unrace.chaos")) { store in
            try await store.withTransaction { tx in
                var stored: Set<String> = []
                for row in try await tx.query("SELECT id FROM shop_orders ORDER BY created_at, id") {
                    let id = try row.string("id")
                    stored.insert(id)
                    entries.append(.effect("order:\(id)", actor: "serve"))
                }
                // The audit: every order a client was told about is in the database.
                let missing = outcomes.compactMap(\.order).filter { !stored.contains($0) }.count
                // In the external systems' order (the log's), after the orders: like the orders,
                // without a `position`, which the history format wants on every effect or none.
                for event in external where event.delivered {
                    let operation = event.operation ?? "\(event.kind.rawValue):unknown-\(event.id)"
                    let order = operation.split(separator: ":", maxSplits: 1).last.map(String.init) ?? ""
                    entries.append(
                        .effect(
                            operation,
                            stream: order,
                            sequence: event.kind == .charge ? 1 : 2,
                            actor: event.worker ?? "unknown"
                        )
                    )
                }
                let stock = try await tx.query("SELECT available FROM shop_stock WHERE sku = 'widget'")[0].int64("available")
                entries.append(.account("stock:widget", initial: initialStock, final: stock))
                let balance = try await tx.query("SELECT balance FROM shop_merchant WHERE id = 'merchant'")[0].int64("balance")
                entries.append(.account("merchant", initial: 0, final: balance))
                let dead = try await tx.query("SELECT COUNT(*) AS n FROM unrace_queue_messages WHERE state = 'dead'")[0].int64("n")
                return (entries, Int(dead), missing)
            }
        }
    }

    // MARK: Support

    static func execute(_ url: String, _ sql: String) async throws {
        let client = PostgresClient(configuration: try PostgresStore.clientConfiguration(url: url))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addRunning(client)
            defer { group.cancelAll() }
            try await client.query(PostgresQuery(unsafeSQL: sql))
        }
    }

    static var executable: URL {
        Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    }

    static func logFile(_ url: URL) throws -> FileHandle {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        return try FileHandle(forWritingTo: url)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
