import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import Unrace
import UnraceHTTP

/// `POST /payments/{id}/capture` answer.
struct Capture: ResponseCodable {
    var orderID: String
    var chargeID: String
    var amountCents: Int64
}

extension Shop {
    /// Captures an order's payment at the provider, once, with the two-phase API: the key is the
    /// business operation (`capture:<order>`), the provider call runs outside any transaction
    /// under the claim, and the provider's own idempotency key is derived from the operation, so
    /// a holder that takes over after a crash (between the charge and `complete`) sends the same
    /// key and the provider charges once. The order is marked paid in `complete`'s transaction.
    ///
    /// Answers 200 with the capture (replays too), 404 for an unknown order, 409
    /// `request_in_progress` with `Retry-After` while another holder's lease is live — and to a
    /// holder whose claim was taken over while it called the provider (its `complete` is fenced:
    /// the key is the other holder's, and a retry gets that holder's outcome).
    func capture(_ request: Request, _ context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        guard (1...64).contains(id.utf8.count), id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPProblem(.notFound, detail: "there is no such order")
        }
        let rows = try await store.withTransaction { tx in
            try await tx.query("SELECT quantity FROM shop_orders WHERE id = ?", [.text(id)])
        }
        guard let quantity = try rows.first?.int64("quantity") else { throw HTTPProblem(.notFound, detail: "there is no such order") }
        let (amount, overflow) = quantity.multipliedReportingOverflow(by: configuration.unitPriceCents)
        guard !overflow, amount > 0 else {
            throw HTTPProblem(.badRequest, detail: "the order's amount is outside what can be charged")
        }
        switch try await operations.begin(key: "capture:\(id)") {
        case .completed(let done):
            return try await respond(try done.value(as: Capture.self), request, context)
        case .inProgress:
            return Self.captureInProgress("another capture of this order is running")
        case .fingerprintMismatch:
            throw HTTPProblem(.idempotencyKeyReused)
        case .acquired(let handle):
            let providerKey = configuration.providerKeys ? handle.derivedKey("charge") : nil
            let charge: ChargeResponse
            do {
                charge = try await chargeProvider(amount: amount, key: providerKey)
            } catch {
                // Nothing charged for sure: free the key so the client's retry need not wait for
                // the lease (the derived provider key makes a retry safe either way).
                let operations = operations
                await Task.detached { try? await operations.fail(handle, reason: .retryable) }.value
                throw error
            }
            configuration.faults.afterCharge?()
            let capture = Capture(orderID: id, chargeID: charge.id, amountCents: amount)
            do {
                try await operations.complete(handle, result: capture) { tx in
                    try await tx.execute("UPDATE shop_orders SET status = 'paid' WHERE id = ?", [.text(id)])
                }
            } catch let error as UnraceError where error.code == .fenced {
                // Taken over while this holder called the provider: the derived key made the two
                // charges one, and the other holder's outcome is the one a retry replays.
                return Self.captureInProgress("this capture was taken over by a retry; send it again for its outcome")
            }
            return try await respond(capture, request, context)
        }
    }

    /// 409 `request_in_progress` with `Retry-After: 1`.
    static func captureInProgress(_ detail: String) -> Response {
        var response = HTTPProblem(.requestInProgress, detail: detail).response()
        response.headers[.retryAfter] = "1"
        return response
    }

    private func respond(_ capture: Capture, _ request: Request, _ context: Context) async throws -> Response {
        try capture.response(from: request, context: context)
    }

    private func chargeProvider(amount: Int64, key: String?) async throws -> ChargeResponse {
        guard let provider = configuration.provider else {
            throw HTTPProblem(
                HTTPProblem.Code("provider_unavailable"),
                status: .serviceUnavailable,
                title: "Payment provider not configured"
            )
        }
        var request = HTTPClientRequest(url: provider + "/charges")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let key { request.headers.add(name: "Idempotency-Key", value: "\"\(key)\"") }
        request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(ChargeRequest(amountCents: amount))))
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        } catch {
            throw HTTPProblem(HTTPProblem.Code("provider_unavailable"), status: .serviceUnavailable, title: "Payment provider unreachable")
        }
        let body = try await response.body.collect(upTo: 1 << 16)
        guard (200..<300).contains(response.status.code), let charge = try? JSONDecoder().decode(ChargeResponse.self, from: body) else {
            throw HTTPProblem(HTTPProblem.Code("provider_failed"), status: .badGateway, title: "Payment provider failed")
        }
        return charge
    }
}
