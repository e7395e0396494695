import AsyncHTTPClient
import Foundation
import NIOCore
import Unrace

/// A client of the external systems a worker calls (``PaymentProvider``: charges and emails),
/// over HTTP. A call that fails — unreachable, a timeout, a 5xx — throws: the delivery is
/// nacked and comes back, and the retry sends the same idempotency key (guarded) or none (naive).
struct ExternalSystems: Sendable {
    /// The systems' base URL, such as `http://127.0.0.1:9000`.
    let base: String
    /// Who calls, sent as `X-Worker` for the systems' log.
    let worker: String

    struct Failed: Error, CustomStringConvertible {
        let description: String
    }

    /// Charges `amount` for `operation`, with `key` as the provider's idempotency key (or none).
    func charge(_ amount: Int64, operation: String, key: String?) async throws {
        try await post("/charges", ChargeRequest(amountCents: amount), operation: operation, key: key)
    }

    /// Sends the confirmation email of `order`, with `key` as the mail API's idempotency key (or none).
    func email(order: String, operation: String, key: String?) async throws {
        try await post(
            "/emails",
            EmailRequest(to: "customer-\(order)@example.com", subject: "Order \(order) confirmed"),
            operation: operation,
            key: key
        )
    }

    private func post(_ path: String, _ body: some Encodable, operation: String, key: String?) async throws {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Operation", value: operation)
        request.headers.add(name: "X-Worker", value: worker)
        if let key { request.headers.add(name: "Idempotency-Key", value: "\"\(key)\"") }
        request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(body)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 16)
        guard (200..<300).contains(response.status.code) else { throw Failed(description: "\(path) answered \(response.status.code)") }
    }
}
