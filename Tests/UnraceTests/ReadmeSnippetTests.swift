// swift-format-ignore-file
// The README's snippets stand here verbatim (ReadmeSnippetTests checks them line for line).
import Foundation
import Logging
import Testing
import Unrace
import UnracePostgres
import UnraceSQLite

// The README's Swift snippets, verbatim (their `import` lines are at the top of this file), each
// in a function with the names it assumes. This file compiles with the test target, so the
// snippets compile as shown; `readmeSnippetsAreHere` checks that every ```swift block of the
// README still appears here line for line, and the ledger snippet runs.

struct PaymentMessage: Sendable {
    var paymentID: String
    var body: [String: String]
}

struct CaptureResult: Codable, Sendable {
    var paymentID: String
}

struct Charge: Codable, Sendable {
    var id: String
}

struct FakeProvider {
    func charge(_ amount: Int64, idempotencyKey: String) async throws -> Charge { Charge(id: idempotencyKey) }
}

struct RetryLater: Error {
    init(_ until: Timestamp) {}
}

struct BadRequest: Error {}

// README: "Use it"
func readmeUseIt(message: PaymentMessage, logger: Logger) async throws {
    let store = try await SQLiteStore(path: "shop.sqlite")
    let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(86_400))

    // A consumer handling a possibly redelivered "capture payment" message: the capture runs once.
    let receipt = try await operations.perform(
        key: "capture:\(message.paymentID)", scope: "payments",
        fingerprint: try .json(message.body)
    ) { tx in
        try await tx.execute("UPDATE payments SET captured = 1 WHERE id = ?", [.text(message.paymentID)])
        return CaptureResult(paymentID: message.paymentID)
    }
    if receipt.isReplay { logger.info("duplicate delivery absorbed") }
}

func handleMessages(with operations: Operations<PostgresStore>) async throws {}

// README: "On PostgreSQL only the store changes"
func readmePostgres() async throws {
    try await PostgresStore.withStore(url: "postgres://app@db.internal:5432/shop") { store in
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(86_400))
        try await handleMessages(with: operations)   // the same code as above
    }
    // Or bring your own PostgresClient, run by your ServiceGroup: try await PostgresStore(client: client)
}

// README: two phases under a lease
func readmeTwoPhase(operations: Operations<SQLiteStore>, provider: FakeProvider, orderID: String, amount: Int64) async throws -> Charge {
    switch try await operations.begin(key: "charge:\(orderID)", scope: "payments") {
    case .acquired(let handle):
        let charge = try await provider.charge(amount, idempotencyKey: handle.derivedKey("charge"))
        try await operations.complete(handle, result: charge) { tx in
            try await tx.execute("UPDATE orders SET paid = 1 WHERE id = ?", [.text(orderID)])
        }
        return charge
    case .completed(let done):      return try done.value(as: Charge.self)     // already charged
    case .inProgress(_, let until): throw RetryLater(until)                      // another worker holds it
    case .fingerprintMismatch:      throw BadRequest()                           // key reused for another request
    }
}

// README: the ledger
func readmeLedger<S: Store>(store: S, transferID: String) async throws -> [TransferResult] {
    let ledger = try Ledger(store: store)
    _ = try await ledger.createAccounts([
        Account(id: "bank", ledger: 1, code: 9),
        Account(id: "wallet:alice", ledger: 1, code: 1, flags: .debitsMustNotExceedCredits),
        Account(id: "merchant:7", ledger: 1, code: 2),
    ])
    _ = try await ledger.submit([Transfer(id: "deposit:alice:1", debit: "bank", credit: "wallet:alice", amount: 100)])
    let results = try await ledger.submit([Transfer(id: transferID, debit: "wallet:alice", credit: "merchant:7", amount: 40)])
    // [.created]; [.exceedsCredits] once the wallet cannot cover it; [.exists] for a retry of the
    // same transfer; [.idAlreadyFailed] for a retry of one that failed
    return results
}

func state(after event: InboxEvent) -> String { event.type == "OrderCancelled" ? "cancelled" : "open" }
func ack(_ event: InboxEvent) {}

// README: the inbox
func readmeInbox<S: SQLStore>(store: S, event: InboxEvent) async throws {
    let inbox = try Inbox(store: store)
    switch try await inbox.receive(event, { tx, event in
        try await tx.execute("UPDATE orders SET state = ? WHERE id = ?", [.text(state(after: event)), .text(event.stream)])
        return .applied
    }) {
    case .applied, .parked, .duplicate, .stale, .rejected: ack(event)   // all durable: safe to ack
    }
    // parkingLimitReached is thrown, not returned: do not ack, the broker redelivers later.
}

func capture(_ event: InboxEvent, _ tx: some SQLTransaction) async throws {
    try await tx.execute("INSERT INTO captures (id) VALUES (?)", [.text(event.stream)])
}

// README: the queue and its outbox
func readmeQueue<S: SQLStore>(store: S, operations: Operations<S>, inbox: Inbox<S>, orderKey: String, orderID: String, payload: [UInt8]) async throws {
    let queue = try MessageQueue(store: store, name: "orders")

    // The outbox: the message commits with the order, or not at all.
    _ = try await operations.perform(key: orderKey) { tx in
        try await tx.execute("INSERT INTO orders (id) VALUES (?)", [.text(orderID)])
        try await queue.enqueue([OutgoingMessage(id: "capture:\(orderID)", payload: payload, orderingKey: orderID)], in: tx)
        return orderID
    }

    // A worker, in any process. Delivery is at least once, so the work goes through the inbox:
    // once per message, in the order's sequence.
    for delivery in try await queue.lease(limit: 10, worker: "worker-1") {
        _ = try await inbox.receive(try delivery.inboxEvent(type: "capture")) { tx, event in
            try await capture(event, tx)
            return .applied
        }
        try await queue.ack(delivery)
    }
}

@Suite("README snippets")
struct ReadmeSnippetTests {
    @Test("every Swift block of the README appears in this compiled file, line for line")
    func readmeSnippetsAreHere() throws {
        let here = URL(fileURLWithPath: #filePath)
        let readme = try String(contentsOf: here.appendingPathComponent("../../../README.md").standardized, encoding: .utf8)
        // This file and the README snippets that need other imports (Vapor, GRDB), each compiled.
        let sources = [here] + ["ReadmeVaporSnippets.swift", "ReadmeGRDBSnippets.swift", "ProbeCommandTests.swift"].map { here.deletingLastPathComponent().appendingPathComponent($0) }
        let sourceLines = try sources.map { try String(contentsOf: $0, encoding: .utf8) }.joined(separator: "\n")
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().map { $0.components(separatedBy: "\n```")[0] }
        #expect(blocks.count == 11)
        for block in blocks {
            let lines = block.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("import ") }
            guard let first = lines.first else { continue }
            let found = Self.contains(sourceLines, lines)
            #expect(found, "README block starting \"\(first)\" is not in ReadmeSnippetTests.swift, Readme*Snippets.swift or ProbeCommandTests.swift verbatim")
        }
    }

    /// Whether `lines` appear in `source` as consecutive lines.
    static func contains(_ source: [String], _ lines: [String]) -> Bool {
        guard !lines.isEmpty, lines.count <= source.count else { return false }
        for start in 0...(source.count - lines.count) where source[start] == lines[0] {
            if Array(source[start..<(start + lines.count)]) == lines { return true }
        }
        return false
    }

    @Test("the README's queue example: the order and its message commit together; run twice, it captures once", arguments: sqlBackends)
    func queueRuns(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.queueRuns(store) }
    }

    static func queueRuns<S: SQLStore>(_ store: S) async throws {
        try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
            try await tx.execute("CREATE TABLE captures (id TEXT NOT NULL)")
        }
        let operations = try Operations(store: store)
        let inbox = try Inbox(store: store)
        for _ in 0..<2 {  // a retried request: the perform replays, nothing is enqueued or leased again
            try await readmeQueue(store: store, operations: operations, inbox: inbox, orderKey: "k1", orderID: "o1", payload: Array("40".utf8))
        }
        #expect(try await countRows(store, "orders") == 1)
        #expect(try await countRows(store, "captures") == 1)
        #expect(try await MessageQueue(store: store, name: "orders").depth() == QueueDepth(done: 1))
    }

    @Test("the README's ledger example funds the wallet, so its transfer succeeds", arguments: sqlBackends)
    func ledgerRuns(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            let first = try await readmeLedger(store: store, transferID: "t1")
            let retry = try await readmeLedger(store: store, transferID: "t1")
            #expect(first == [.created])
            #expect(retry == [.exists])
        }
    }
}
