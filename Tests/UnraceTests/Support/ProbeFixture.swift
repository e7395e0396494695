import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A small HTTP service for the prober's tests: an idempotent `POST /orders`, `GET /count`, and a
/// product with `ETag` and `If-Match` — correct, or wrong in exactly one way each test names.
/// A test about the prober's logic, so the service is a fake (the real shops are probed too).
struct ProbeFixture: Sendable {
    /// The one way the service goes wrong.
    enum Fault: Sendable {
        /// Nothing: keys under a unique index, 422 for a used key with another body, 428 without one.
        case none
        /// No idempotency at all: every request creates an order.
        case noIdempotency
        /// Concurrent requests with one key share one execution, but a finished key is forgotten:
        /// a retry after the answer creates another order.
        case forgetsFinishedKeys
        /// A used key with another body gets the first request's stored answer.
        case keyIgnoresBody
        /// A request without a key is served (and creates an order).
        case acceptsWithoutKey
        /// `PUT /products/p` ignores `If-Match`: the last writer wins.
        case lastWriterWins
        /// Correct, but a request whose key is still running gets 409 with `Retry-After: 0`
        /// (conflict mode), and a used key with another body 400 instead of 422.
        case conflictWhileRunning
    }

    let state: State

    init(_ fault: Fault) { state = State(fault: fault) }

    actor State {
        let fault: Fault
        var orders: [String] = []
        var finished: [String: (body: [UInt8], answer: Answer)] = [:]
        var running: [String: Task<Answer, Never>] = [:]
        var product = (version: 1, body: #"{"name":"Widget","priceCents":100}"#)
        var ordersReceived = 0

        init(fault: Fault) { self.fault = fault }

        struct Answer: Sendable {
            var status: HTTPResponse.Status
            var id: String
        }

        func order(key: String?, body: [UInt8]) async -> Answer {
            ordersReceived += 1
            guard let key else {
                return fault == .acceptsWithoutKey || fault == .noIdempotency ? create() : Answer(status: .preconditionRequired, id: "")
            }
            if fault == .noIdempotency { return create() }
            if let done = finished[key] {
                if done.body != body, fault != .keyIgnoresBody {
                    return Answer(status: fault == .conflictWhileRunning ? .badRequest : .unprocessableContent, id: "")
                }
                return done.answer
            }
            if let task = running[key] {
                if fault == .conflictWhileRunning {
                    secondArrivals[key]?.yield()
                    return Answer(status: .conflict, id: "")
                }
                return await task.value
            }
            let (arrivals, arrived) = AsyncStream<Void>.makeStream()
            if fault == .conflictWhileRunning { secondArrivals[key] = arrived }
            let task = Task { await self.createSlowly(until: fault == .conflictWhileRunning ? arrivals : nil) }
            running[key] = task
            let answer = await task.value
            running[key] = nil
            if fault != .forgetsFinishedKeys { finished[key] = (body, answer) }
            return answer
        }

        /// For ``Fault/conflictWhileRunning``: a running key's first execution goes on until a
        /// second request with its key was answered 409 (or 2 s passed, for a key sent once).
        var secondArrivals: [String: AsyncStream<Void>.Continuation] = [:]

        private func createSlowly(until arrivals: AsyncStream<Void>?) async -> Answer {
            if let arrivals {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { for await _ in arrivals { break } }
                    group.addTask { try? await Task.sleep(for: .seconds(2)) }
                    await group.next()
                    group.cancelAll()
                }
            }
            // Let the other requests of a burst arrive while this one runs.
            for _ in 0..<10 { await Task.yield() }
            return create()
        }

        private func create() -> Answer {
            let id = UUID().uuidString.lowercased()
            orders.append(id)
            return Answer(status: .created, id: id)
        }

        func put(ifMatch: String?, body: String) -> HTTPResponse.Status {
            if fault != .lastWriterWins {
                guard let ifMatch else { return .preconditionRequired }
                guard ifMatch == "\"\(product.version)\"" else { return .preconditionFailed }
            }
            product = (product.version + 1, body)
            return .ok
        }
    }

    /// The service's routes.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let state = state
        router.post("orders") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let answer = await state.order(key: request.headers[HTTPField.Name("Idempotency-Key")!], body: Array(buffer: body))
            guard answer.status == .created else {
                return Response(status: answer.status, headers: answer.status == .conflict ? [.retryAfter: "0"] : [:])
            }
            return Response(
                status: .created,
                headers: [.location: "/orders/\(answer.id)", .contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"id":"\#(answer.id)"}"#))
            )
        }
        router.get("count") { _, _ -> Response in
            let count = await state.orders.count
            return Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"count":\#(count)}"#))
            )
        }
        router.get("products/p") { _, _ -> Response in
            let product = await state.product
            return Response(
                status: .ok,
                headers: [.eTag: "\"\(product.version)\"", .contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: product.body))
            )
        }
        router.put("products/p") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            return Response(status: await state.put(ifMatch: request.headers[.ifMatch], body: String(buffer: body)))
        }
        return router
    }
}
