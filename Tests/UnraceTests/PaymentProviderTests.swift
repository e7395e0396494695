import Foundation
import Testing
import UnraceShop

/// The fault runs' external truth must behave like the provider it stands in for: a key answers
/// its first result only for the same request, and amounts are bounded.
@Suite("Payment provider")
struct PaymentProviderTests {
    @Test("a key seen before answers its first charge for the same body and is refused (422, nothing charged) for another")
    func keyReusedWithAnotherBody() async throws {
        try await withInProcessServer(PaymentProvider().router()) { provider in
            let key = [("Idempotency-Key", "\"k1\"")]
            let first = try await provider.send(.POST, "/charges", headers: key, json: #"{"amountCents":5}"#)
            let again = try await provider.send(.POST, "/charges", headers: key, json: #"{"amountCents":5}"#)
            #expect(first.status == 201 && again.status == 200)
            // Equal as JSON: the encoder's key order is not fixed.
            #expect(
                try Self.charge(again) == Self.charge(first) && Self.charge(first) == Charge(id: "ch_1", amountCents: 5),
                "\(again.body)"
            )
            let other = try await provider.send(.POST, "/charges", headers: key, json: #"{"amountCents":6}"#)
            #expect(other.status == 422 && other.body.contains("idempotency_key_reused"), "\(other.status) \(other.body)")
            let email = [("Idempotency-Key", "\"e1\"")]
            let sent = try await provider.send(.POST, "/emails", headers: email, json: #"{"to":"a@example.com","subject":"s"}"#)
            let resent = try await provider.send(.POST, "/emails", headers: email, json: #"{"to":"a@example.com","subject":"t"}"#)
            #expect(sent.status == 201 && resent.status == 422, "\(sent.status) \(resent.status)")
            let summary = try await provider.send(.GET, "/charges")
            #expect(summary.body.contains(#""charges":1"#) && summary.body.contains(#""amountCents":5"#), "\(summary.body)")
            let log = try await provider.send(.GET, "/log")
            #expect(log.body.components(separatedBy: #""kind":"#).count - 1 == 3, "the refused requests are not in the log: \(log.body)")
        }
    }

    struct Charge: Decodable, Equatable {
        var id: String
        var amountCents: Int64
    }

    static func charge(_ exchange: HTTPExchange) throws -> Charge {
        try JSONDecoder().decode(Charge.self, from: Data(exchange.body.utf8))
    }

    @Test(
        "an amount outside 1 to 10^12 cents is refused with 400 and charges nothing",
        arguments: ["0", "-1", "-9223372036854775808", "1000000000001", "9223372036854775807"]
    )
    func amountsOutOfRange(_ amount: String) async throws {
        try await withInProcessServer(PaymentProvider().router()) { provider in
            let refused = try await provider.send(
                .POST,
                "/charges",
                headers: [("Idempotency-Key", "\"k\"")],
                json: #"{"amountCents":\#(amount)}"#
            )
            #expect(refused.status == 400, "\(refused.status) \(refused.body)")
            let summary = try await provider.send(.GET, "/charges")
            #expect(summary.body.contains(#""charges":0"#), "\(summary.body)")
        }
    }
}
