import AsyncHTTPClient
import Foundation
import Logging
import Testing
import Unrace
import UnraceSQL
import UnraceShop

/// The shop's queue worker (`unrace work`): what it does with deliveries it cannot handle, and
/// what an outside caller can (not) do to its streams.
@Suite("Shop worker", .timeLimit(.minutes(10)))
struct ShopWorkerTests {
    static var quiet: Logger {
        var logger = Logger(label: "test.worker")
        logger.logLevel = .critical
        return logger
    }

    @Test("a delivery the handler cannot decode is nacked, then dead-lettered; the worker never stops", arguments: sqlBackends)
    func poisonMessage(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.poisonMessage(store) }
    }

    static func poisonMessage<S: SQLStore>(_ store: S) async throws {
        var configuration = ShopConfiguration()
        configuration.queue.maxAttempts = 2
        let shop = try Shop(store: store, configuration: configuration, logger: quiet)
        try await shop.setUp()
        try await shop.queue.enqueue([OutgoingMessage(id: "poison", payload: [0xFF, 0x00], orderingKey: "o1")])
        var consumer = QueueConfiguration()
        consumer.backoff = .zero
        let worker = try ShopWorker(store: store, handler: .guarded, name: "w1", configuration: consumer, logger: quiet)
        #expect(try await worker.runOnce() == 1, "handled (nacked), not thrown out of the worker")
        let waiting = try await shop.queue.depth()
        #expect(waiting.ready == 1 && waiting.dead == 0)
        #expect(try await worker.runOnce() == 1)
        let dead = try await shop.queue.deadLetters()
        #expect(dead.map(\.id) == ["poison"] && dead.map(\.attempts) == [2])
        #expect(dead.first?.lastError?.hasPrefix("handler failed") == true)
        #expect(try await worker.runOnce() == 0)
    }

    @Test(
        "a handler that charged and then failed to commit runs again: guarded, the provider's key absorbs the second charge; naive, it charges twice",
        arguments: sqlBackends
    )
    func chargeThenFail(_ backend: SQLBackend) async throws {
        for handler in ShopHandlerKind.allCases {
            try await withStore(backend) { store, _ in try await Self.chargeThenFail(store, handler) }
        }
    }

    static func chargeThenFail<S: SQLStore>(_ store: S, _ handler: ShopHandlerKind) async throws {
        let shop = try Shop(store: store, logger: quiet)
        try await shop.setUp()
        // The first run's local write fails after the call out, as a worker killed between the
        // provider's answer and its commit would: the message comes back and runs again.
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE fail_flag (x INTEGER)")
            try await tx.execute("INSERT INTO fail_flag (x) VALUES (1)")
            if store.dialect == .postgres {
                try await tx.execute(
                    """
                    CREATE FUNCTION fail_once() RETURNS trigger AS $$ BEGIN
                    IF EXISTS (SELECT 1 FROM fail_flag) THEN RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql
                    """
                )
                try await tx.execute("CREATE TRIGGER fail_once BEFORE INSERT ON shop_effects FOR EACH ROW EXECUTE FUNCTION fail_once()")
            } else {
                try await tx.execute(
                    """
                    CREATE TRIGGER fail_once BEFORE INSERT ON shop_effects WHEN EXISTS (SELECT 1 FROM fail_flag)
                    BEGIN SELECT RAISE(ABORT, 'injected'); END
                    """
                )
            }
        }
        try await shop.queue.enqueue([
            OutgoingMessage(id: "capture:o1", payload: Array(#"{"order":"o1","task":"capture","amount":250}"#.utf8), orderingKey: "o1")
        ])
        try await withLiveServer(PaymentProvider().router()) { provider in
            var consumer = QueueConfiguration()
            consumer.backoff = .zero
            let worker = try ShopWorker(
                store: store,
                handler: handler,
                name: "w1",
                configuration: consumer,
                externalSystems: "http://127.0.0.1:\(provider.port)",
                logger: quiet
            )
            #expect(try await worker.runOnce() == 1)
            _ = try await store.withTransaction { tx in try await tx.execute("DELETE FROM fail_flag") }
            #expect(try await worker.runOnce() == 1)
            let log = try await provider.send(.GET, "/log")
            let events = try JSONDecoder().decode(Log.self, from: Data(log.body.utf8)).events
            #expect(events.count == 2, "two runs, two calls: \(events)")
            let charged = events.filter(\.delivered).count
            #expect(charged == (handler == .guarded ? 1 : 2), "\(handler): \(events)")
            #expect(events.allSatisfy { $0.operation == "capture:o1" && $0.worker == "w1" && $0.keyed == (handler == .guarded) })
        }
    }

    struct Log: Decodable { var events: [ExternalEvent] }

    @Test("POST /events cannot name the queue's streams: the capture of an order still happens once", arguments: sqlBackends)
    func forgedOrderStream(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, store, _ in try await Self.forgedOrderStream(client, store) }
    }

    static func forgedOrderStream<S: SQLStore>(_ client: some HTTPTestClient, _ store: S) async throws {
        let order = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "o")], json: #"{"sku":"widget","quantity":1}"#)
        #expect(order.status == 201)
        let id = try #require(order.header("Location")).replacingOccurrences(of: "/orders/", with: "")
        for stream in ["shop-orders/\(id)", "$shop-orders/\(id)"] {
            for sequence in [1, 3] {
                let forged = try await client.send(
                    .POST,
                    "/events",
                    json: #"{"id":"forged-\#(sequence)","order":"\#(stream)","sequence":\#(sequence),"type":"OrderCreated"}"#
                )
                #expect(forged.status == 400 && forged.problemCode == "bad_request", "\(stream)#\(sequence)")
            }
        }
        let worker = try ShopWorker(store: store, handler: .guarded, name: "w1", logger: quiet)
        #expect(try await worker.runOnce() == 2)
        let effects = try await store.withTransaction { tx in
            try await tx.query("SELECT operation FROM shop_effects ORDER BY position").map { try $0.string("operation") }
        }
        #expect(effects == ["capture:\(id)", "email:\(id)"])
    }
}
