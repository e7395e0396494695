import Dispatch
import Foundation
import Synchronization
import Testing
import Unrace
import UnraceShop

/// `POST /payments/{id}/capture` when a retry takes the claim over while the first request is at
/// the payment provider: the first one's late `complete` is fenced.
@Suite("Capture taken over", .timeLimit(.minutes(10)))
struct CaptureTakeoverTests {
    struct Order: Decodable { var id: String }
    struct Charges: Decodable { var charges: Int }

    /// Whether the charge hook has run yet: only the first capture stops in it.
    final class FirstCall: Sendable {
        private let taken = Mutex(false)
        func take() -> Bool {
            taken.withLock { taken in
                defer { taken = true }
                return !taken
            }
        }
    }

    @Test(
        "a capture taken over while it called the provider answers 409 request_in_progress with Retry-After, never 500; one charge, and a retry replays the other's capture"
    )
    func takenOver() async throws {
        try await withLiveServer(PaymentProvider().router()) { provider in
            let clock = ManualWallClock()
            let charged = Latch()
            let release = DispatchSemaphore(value: 0)
            let first = FirstCall()
            var configuration = ShopConfiguration()
            configuration.clock = clock
            configuration.lease = .seconds(30)
            configuration.provider = "http://127.0.0.1:\(provider.port)"
            // The first capture stops between the provider's charge and its `complete`, as a
            // stalled process would (this hook is synchronous: it holds one thread).
            configuration.faults.afterCharge = {
                guard first.take() else { return }
                charged.open()
                // Bounded: a test that fails before its signal must not hold this thread for good.
                _ = release.wait(timeout: .now() + .seconds(120))
            }
            try await withShop(.sqlite, configuration) { client, _, _ in
                let created = try await client.send(
                    .POST,
                    "/orders",
                    headers: [("Idempotency-Key", "\"o1\"")],
                    json: #"{"sku":"widget","quantity":2}"#
                )
                #expect(created.status == 201)
                let id = try JSONDecoder().decode(Order.self, from: Data(created.body.utf8)).id
                async let stalled = client.send(.POST, "/payments/\(id)/capture")
                await charged.wait()
                clock.advance(by: .seconds(31))  // past the first holder's lease
                let sent = await outcome { try await client.send(.POST, "/payments/\(id)/capture") }
                release.signal()
                let retry = try sent.get()
                #expect(retry.status == 200)
                let late = try await stalled
                #expect(late.status == 409, "\(late.status) \(late.body)")
                #expect(late.problemCode == "request_in_progress" && late.header("Retry-After") == "1")
                let again = try await client.send(.POST, "/payments/\(id)/capture")
                #expect(again.status == 200 && again.body == retry.body, "the retry's capture is the one kept")
            }
            let summary = try await provider.send(.GET, "/charges")
            #expect(
                try JSONDecoder().decode(Charges.self, from: Data(summary.body.utf8)).charges == 1,
                "the derived key made two calls one charge"
            )
        }
    }
}
