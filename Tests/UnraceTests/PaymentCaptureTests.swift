import Foundation
import Testing
import Unrace

/// The seed's payment capture over real processes: a shop that dies between the provider's
/// charge and `complete`, restarted, and the capture retried.
@Suite("Payment capture across a crash", .timeLimit(.minutes(10)))
struct PaymentCaptureTests {
    struct Charges: Decodable { var charges: Int }
    struct Capture: Decodable {
        var orderID: String
        var chargeID: String
    }
    struct Order: Decodable { var id: String }

    @Test("derived provider keys: the retried capture charges once; without them it charges twice", arguments: sqlBackends)
    func crashBetweenChargeAndComplete(_ backend: SQLBackend) async throws {
        try await withStore(backend) { _, location in
            let guarded = try await captureAcrossCrash(location, backend, naive: false)
            #expect(guarded == 1)
        }
        try await withStore(backend) { _, location in
            let naive = try await captureAcrossCrash(location, backend, naive: true)
            #expect(naive == 2)
        }
    }

    /// Runs the scenario and returns how many charges the provider made.
    private func captureAcrossCrash(_ location: String, _ backend: SQLBackend, naive: Bool) async throws -> Int {
        let providerProcess = try ChildProcess(["provider", "--port", "0"])
        try await providerProcess.waitFor("listening on")
        let provider = LiveClient(port: try #require(providerProcess.listeningPort))
        let database = backend == .postgres ? ["--database", location] : ["--file", location]
        let arguments =
            ["serve", "--port", "0", "--lease", "1", "--provider", "http://127.0.0.1:\(provider.port)"]
            + database + (naive ? ["--naive-capture"] : [])
        let crashing = try ChildProcess(arguments, environment: ["UNRACE_SHOP_FAULT": "crash-after-charge"])
        try await crashing.waitFor("listening on")
        let shop = LiveClient(port: try #require(crashing.listeningPort))
        let created = try await shop.send(.POST, "/orders", headers: [("Idempotency-Key", "o1")], json: #"{"sku":"widget","quantity":2}"#)
        #expect(created.status == 201)
        let order = try JSONDecoder().decode(Order.self, from: Data(created.body.utf8))
        // The shop charges, then dies before it completes the capture.
        await #expect(throws: (any Error).self) { try await shop.send(.POST, "/payments/\(order.id)/capture") }
        #expect(await crashing.exitStatus() == SIGKILL)
        #expect(try await charges(provider) == 1)

        let restarted = try ChildProcess(arguments)
        try await restarted.waitFor("listening on")
        let again = LiveClient(port: try #require(restarted.listeningPort))
        // The dead holder's claim lasts one second; until then a retry is told to come back.
        var capture = try await again.send(.POST, "/payments/\(order.id)/capture")
        var attempts = 1
        while capture.status == 409, attempts < 30 {
            #expect(capture.header("Retry-After") == "1")
            try await Task.sleep(for: .milliseconds(250))  // client back-off, as Retry-After asks
            capture = try await again.send(.POST, "/payments/\(order.id)/capture")
            attempts += 1
        }
        #expect(capture.status == 200)
        let replay = try await again.send(.POST, "/payments/\(order.id)/capture")
        #expect(replay.status == 200 && replay.body == capture.body, "\(capture.body) vs \(replay.body)")
        let made = try await charges(provider)
        #expect(await restarted.terminate() == 0)
        #expect(await providerProcess.terminate() == 0)
        return made
    }

    private func charges(_ provider: LiveClient) async throws -> Int {
        let response = try await provider.send(.GET, "/charges")
        return try JSONDecoder().decode(Charges.self, from: Data(response.body.utf8)).charges
    }
}
