import Foundation
public import Logging
public import Unrace
public import UnraceSQL

/// The work an order leaves in the outbox, in the order it must happen on the order's stream.
public enum ShopTask: String, Sendable, Codable, CaseIterable {
    /// Capture the order's amount (sequence 1).
    case capture
    /// Send the confirmation email (sequence 2): never before the capture.
    case email

    /// The operation a task performs for an order, as the history checker names it.
    public func operation(order: String) -> String { "\(rawValue):\(order)" }

    func message(order: String, amount: Int64) -> OutgoingMessage {
        let payload = TaskPayload(order: order, task: self, amount: self == .capture ? amount : 0)
        return OutgoingMessage(id: operation(order: order), payload: Array(try! JSONEncoder().encode(payload)), orderingKey: order)
    }
}

/// A task message's payload.
struct TaskPayload: Codable {
    var order: String
    var task: ShopTask
    var amount: Int64
}

/// How a worker handles the order queue's messages.
public enum ShopHandlerKind: String, Sendable, CaseIterable {
    /// Each delivery does its work in its own transactions and then acks: a redelivery (a
    /// worker killed before its ack, a lease that ran out) does the work again; the email can go
    /// out before the capture; the merchant's balance is read and written back (lost updates).
    case naive
    /// Each delivery goes through the ``Inbox`` on the order's stream: applied once per message,
    /// in sequence order, with the balance moved by an atomic update in the same transaction.
    case guarded
}

/// A worker of the shop's order queue (`unrace work`): leases capture and email messages, calls
/// the external systems — the payment provider charges, the mail API sends the confirmation —
/// records each effect in `shop_effects` and moves the merchant's balance, and acks.
///
/// The guarded handler runs each message once, in order, through the ``Inbox``; its calls out
/// carry idempotency keys derived from the business operation (`capture:<order>` → `charge-…`),
/// so a handler that runs again — a worker killed after the call and before its commit, a
/// PostgreSQL step retried — sends the same key, and the provider charges (the mail API sends)
/// once. The naive handler calls without keys: a redelivery charges again.
public struct ShopWorker<S: SQLStore>: Sendable {
    let store: S
    let queue: MessageQueue<S>
    let inbox: Inbox<S>
    let handler: ShopHandlerKind
    let name: String
    let external: ExternalSystems?
    let logger: Logger

    /// A worker. Of `configuration`, the visibility timeout, the backoff (a nack's delay) and the
    /// clock matter here — the worker's, not the shop's; only the attempt limit was fixed by the
    /// shop when it enqueued (it is stored with each message).
    /// - Parameter externalSystems: the base URL of the payment provider and mail API
    ///   (`unrace provider`, an `http` or `https` URL with a host); `nil` records the effects in
    ///   `shop_effects` only.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for a URL the worker could not call;
    ///   ``UnraceError/Code/invalidArgument`` for a name that breaks ``NameRule/workerName``.
    public init(
        store: S,
        handler: ShopHandlerKind,
        name: String,
        configuration: QueueConfiguration = .init(),
        externalSystems: String? = nil,
        logger: Logger
    ) throws {
        self.store = store
        self.queue = try MessageQueue(store: store, name: Shop<S>.queueName, configuration: configuration)
        self.inbox = try Inbox(store: store)
        self.handler = handler
        let name = try NameRule.workerName.validate(name)
        self.name = name
        self.external = try externalSystems.map { ExternalSystems(base: try ShopConfiguration.providerBase($0), worker: name) }
        self.logger = logger
    }

    /// Leases up to `limit` messages and handles them. A delivery whose handling fails — for
    /// any reason: a payload that does not decode, a store error, a bug — is nacked with the
    /// error's kind as its reason (delivered again after the queue's backoff, dead-lettered
    /// after its last attempt); it never stops the worker.
    /// - Returns: how many deliveries it handled (acked, nacked or found fenced).
    public func runOnce(limit: Int = 10) async throws -> Int {
        let deliveries = try await queue.lease(limit: limit, worker: name)
        for delivery in deliveries {
            do {
                try await handle(delivery)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                await giveBack(delivery, error)
                continue
            }
            do {
                try await queue.ack(delivery)
            } catch let error as UnraceError where error.code == .fenced {
                logger.notice("ack refused: the message was delivered again", metadata: ["attempt": "\(delivery.attempt)"])
            }
        }
        return deliveries.count
    }

    private func handle(_ delivery: Delivery) async throws {
        let payload = try JSONDecoder().decode(TaskPayload.self, from: Data(delivery.payload))
        switch handler {
        case .naive: try await naive(payload)
        case .guarded:
            _ = try await inbox.receive(try delivery.inboxEvent(type: payload.task.rawValue)) { tx, event in
                let payload = try JSONDecoder().decode(TaskPayload.self, from: Data(event.payload))
                // The call out, with a key the same for every run of this operation: a run that
                // repeats (its transaction did not commit) is absorbed by the provider.
                let operation = payload.task.operation(order: payload.order)
                try await callOut(
                    payload,
                    key: try OperationKey(operation).derived(payload.task == .capture ? "charge" : "email", scope: .default)
                )
                try await record(payload, tx)
                if payload.task == .capture {
                    try await tx.execute("UPDATE shop_merchant SET balance = balance + ? WHERE id = 'merchant'", [.integer(payload.amount)])
                }
                return .applied
            }
        }
    }

    /// Nacks a delivery whose handling failed. The reason names the error's kind (an Unrace
    /// code, or the error's type), never a payload. A nack that fails too (the store is down,
    /// the lease was lost) is logged: the lease's end brings the message back.
    private func giveBack(_ delivery: Delivery, _ error: any Error) async {
        let reason = (error as? UnraceError).map { "handler failed: \($0.code)" } ?? "handler failed: \(type(of: error))"
        logger.warning("delivery failed; nacked", metadata: ["attempt": "\(delivery.attempt)", "reason": "\(reason)"])
        do {
            try await queue.nack(delivery, reason: reason)
        } catch {
            logger.warning("nack failed; the message comes back when its lease ends", metadata: ["attempt": "\(delivery.attempt)"])
        }
    }

    /// Runs until cancelled. Nothing but cancellation ends it: a failed lease (a database
    /// restart) is logged and retried after a pause.
    public func run(batch: Int = 10, idle: Duration = .milliseconds(20)) async throws {
        while !Task.isCancelled {
            do {
                if try await runOnce(limit: batch) == 0 { try await Task.sleep(for: idle) }
            } catch is CancellationError {
                return
            } catch {
                let code = (error as? UnraceError).map { "\($0.code)" } ?? "\(type(of: error))"
                logger.warning("worker step failed; retrying", metadata: ["code": "\(code)"])
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The naive handler: the call out without a key, then the work in separate transactions.
    private func naive(_ payload: TaskPayload) async throws {
        try await callOut(payload, key: nil)
        try await store.withTransaction { tx in try await record(payload, tx) }
        guard payload.task == .capture else { return }
        let balance = try await store.withTransaction { tx in
            try await tx.query("SELECT balance FROM shop_merchant WHERE id = 'merchant'").first?.int64("balance")
        }
        guard let balance else { throw UnraceError(.notFound, "the shop's merchant row is missing: run the shop's set-up") }
        try await store.withTransaction { tx in
            try await tx.execute(
                "UPDATE shop_merchant SET balance = ? WHERE id = 'merchant'",
                [.integer(balance.addingReportingOverflow(payload.amount).partialValue)]
            )
        }
    }

    /// Charges (capture) or emails (email) at the external systems, when the worker has them.
    private func callOut(_ payload: TaskPayload, key: String?) async throws {
        guard let external else { return }
        let operation = payload.task.operation(order: payload.order)
        switch payload.task {
        case .capture: try await external.charge(payload.amount, operation: operation, key: key)
        case .email: try await external.email(order: payload.order, operation: operation, key: key)
        }
    }

    private func record(_ payload: TaskPayload, _ tx: S.Transaction) async throws {
        try await tx.execute(
            "INSERT INTO shop_effects (operation, stream, sequence, amount, worker) VALUES (?, ?, ?, ?, ?)",
            [
                .text(payload.task.operation(order: payload.order)), .text(payload.order),
                .integer(payload.task == .capture ? 1 : 2), .integer(payload.amount), .text(name),
            ]
        )
    }
}
