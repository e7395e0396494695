import Foundation
import Hummingbird
import Unrace
import UnraceHTTP

/// `POST /events` body: an order event from another service (a warehouse, a payment service).
struct EventRequest: Decodable, Sendable {
    var id: String
    var order: String
    var sequence: Int64
    var type: String
}

/// What the inbox did with an event.
struct EventResponse: ResponseEncodable {
    var outcome: String
    var detail: String?
}

/// An order's fulfilment state, as the events moved it.
struct FulfilmentResponse: ResponseEncodable {
    var order: String
    var state: String
    var head: Int64
}

extension Shop {
    /// The order lifecycle the events follow: `new` → `created` → `paid` → `shipped`, and
    /// `cancelled` from `created` or `paid`. `shipped` and `cancelled` are terminal.
    static var fulfilment: Lifecycle {
        get throws {
            try Lifecycle(
                initial: "new",
                terminal: ["shipped", "cancelled"],
                transitions: [
                    .init(from: "new", on: "OrderCreated", to: "created"),
                    .init(from: "created", on: "PaymentCaptured", to: "paid"),
                    .init(from: "paid", on: "OrderShipped", to: "shipped"),
                    .init(from: "created", on: "OrderCancelled", to: "cancelled"),
                    .init(from: "paid", on: "OrderCancelled", to: "cancelled"),
                ]
            )
        }
    }

    /// `POST /events`: hands the event to the inbox, which applies each event id once, per
    /// order in sequence order, parking early ones until the gap fills; the lifecycle refuses
    /// impossible moves. Answers 202 with what happened: `applied`, `parked`, `duplicate`,
    /// `stale` or `rejected`; acknowledge upstream only after it.
    func receiveEvent(_ request: Request, _ context: Context) async throws -> Response {
        let input = try await decode(EventRequest.self, request, context)
        // The shop's own names only: an order is an order id (no `/`, never a queue's stream),
        // an event id and type are plain tokens.
        guard ShopNames.isSKU(input.order) else {
            throw HTTPProblem(.badRequest, detail: "order must be an order id: 1 to 64 characters of A-Z a-z 0-9 _ -")
        }
        guard ShopNames.isEventID(input.id), ShopNames.isEventType(input.type) else {
            throw HTTPProblem(.badRequest, detail: "id must be 1 to 128 characters of A-Z a-z 0-9 . _ : - and type 1 to 64 letters")
        }
        let lifecycle = try Self.fulfilment
        let outcome: InboxOutcome
        do {
            let event = try InboxEvent(id: input.id, stream: input.order, sequence: input.sequence, type: input.type)
            outcome = try await inbox.receive(event) { tx, event in
                let rows = try await tx.query("SELECT state FROM shop_fulfilment WHERE order_id = ?", [.text(event.stream)])
                let current = try rows.first?.string("state") ?? lifecycle.initial
                switch lifecycle.apply(event.type, to: current) {
                case .moved(_, let target):
                    try await tx.execute(
                        "INSERT INTO shop_fulfilment (order_id, state) VALUES (?, ?) ON CONFLICT (order_id) DO UPDATE SET state = excluded.state",
                        [.text(event.stream), .text(target)]
                    )
                    return .applied
                case .rejected(let reason), .absorbed(let reason):
                    return .rejected(reason: reason)
                }
            }
        } catch let error as UnraceError where [.invalidEvent, .invalidArgument].contains(error.code) {
            throw HTTPProblem(.badRequest, detail: "the event's id, order, sequence or type is not valid")
        } catch let error as UnraceError where error.code == .eventIDReused {
            throw HTTPProblem(
                HTTPProblem.Code("event_id_reused"),
                status: .conflict,
                title: "Event id reused",
                detail: "this id was received with another order, sequence, type or payload"
            )
        } catch let error as UnraceError where error.code == .parkingLimitReached {
            throw HTTPProblem(
                HTTPProblem.Code("parking_limit_reached"),
                status: .serviceUnavailable,
                title: "Too many early events",
                detail: "redeliver later"
            )
        }
        let body: EventResponse =
            switch outcome {
            case .applied(let drained):
                EventResponse(outcome: "applied", detail: drained > 0 ? "\(drained) parked events applied after it" : nil)
            case .rejected(let reason, _): EventResponse(outcome: "rejected", detail: reason)
            case .parked(let waiting): EventResponse(outcome: "parked", detail: "waiting for sequence \(waiting)")
            case .duplicate: EventResponse(outcome: "duplicate", detail: nil)
            case .stale(let head): EventResponse(outcome: "stale", detail: "the order is already at sequence \(head)")
            }
        var response = try body.response(from: request, context: context)
        response.status = .accepted
        return response
    }

    /// `GET /events/orders/{order}`: the order's fulfilment state and the last sequence applied.
    func fulfilment(_ request: Request, _ context: Context) async throws -> FulfilmentResponse {
        let order = try context.parameters.require("order")
        guard ShopNames.isSKU(order) else { throw HTTPProblem(.badRequest, detail: "not a valid order id") }
        let head: Int64
        do { head = try await inbox.head(of: order) } catch let error as UnraceError where error.code == .invalidEvent {
            throw HTTPProblem(.badRequest, detail: "not a valid order id")
        }
        let rows = try await store.withTransaction { tx in
            try await tx.query("SELECT state FROM shop_fulfilment WHERE order_id = ?", [.text(order)])
        }
        return FulfilmentResponse(order: order, state: try rows.first?.string("state") ?? "new", head: head)
    }
}
