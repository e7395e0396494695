import Foundation
import Hummingbird
import Unrace
import UnraceHTTP

/// `POST /seats/{show}/holds` body: the hold key is the client's idempotency key.
struct HoldRequest: Decodable, Sendable {
    var key: String
    var seats: Int64
    var ttlSeconds: Int64
}

/// A hold, as returned.
struct HoldResponse: ResponseEncodable {
    var key: String
    var show: String
    var seats: Int64
    var state: String
}

extension Shop {
    /// `POST /seats/{show}/holds`: sets seats aside for `ttlSeconds` (201); the same key again
    /// answers the same hold (200) and holds nothing more, 409 `hold_not_live` once it expired or
    /// was released, or 409 `hold_key_reused` when it asked for other seats; 409 `sold_out` when
    /// not enough are free.
    func holdSeats(_ request: Request, _ context: Context) async throws -> Response {
        let show = try context.parameters.require("show")
        let input = try await decode(HoldRequest.self, request, context)
        guard ShopNames.isSKU(show), ShopNames.isSKU(input.key) else {
            throw HTTPProblem(.badRequest, detail: "show and key are 1 to 64 characters of A-Z a-z 0-9 _ -")
        }
        guard (1...100).contains(input.seats), (1...3_600).contains(input.ttlSeconds) else {
            throw HTTPProblem(.badRequest, detail: "seats must be 1 to 100 and ttlSeconds 1 to 3600")
        }
        let placement: HoldPlacement
        do {
            placement = try await reservations.placeHold(show, units: input.seats, key: input.key, timeToLive: .seconds(input.ttlSeconds))
        } catch let error as UnraceError where error.code == .notFound {
            throw HTTPProblem(.notFound, detail: "there is no such show")
        } catch let error as UnraceError where error.code == .holdKeyReused {
            throw HTTPProblem(HTTPProblem.Code("hold_key_reused"), status: .conflict, title: "Hold key used for another hold")
        }
        // 201 only for the request whose step placed the hold.
        return try holdResponse(placement.step, created: placement.isNew, request, context)
    }

    /// `POST /seats/holds/{key}/confirm` and `…/release`: settles a live hold once; a retry of the
    /// same settlement answers it again (200), the other settlement answers 409 `hold_not_live`.
    func settleHold(_ request: Request, _ context: Context, confirm: Bool) async throws -> Response {
        let key = try context.parameters.require("key")
        guard ShopNames.isSKU(key) else { throw HTTPProblem(.badRequest, detail: "key is 1 to 64 characters of A-Z a-z 0-9 _ -") }
        let step: HoldStep
        do {
            step = confirm ? try await reservations.confirm(key: key) : try await reservations.release(key: key)
        } catch let error as UnraceError where error.code == .notFound {
            throw HTTPProblem(.notFound, detail: "there is no such hold")
        }
        // A retried confirm (or release) of a hold it already settled answers the same success.
        if case .notLive(let hold) = step, hold.state == (confirm ? .confirmed : .released) {
            return try holdResponse(.hold(hold), created: false, request, context)
        }
        return try holdResponse(step, created: false, request, context)
    }

    private func holdResponse(_ step: HoldStep, created: Bool, _ request: Request, _ context: Context) throws -> Response {
        switch step {
        case .hold(let hold):
            var response = try HoldResponse(key: hold.key, show: hold.resource, seats: hold.units, state: hold.state.rawValue)
                .response(from: request, context: context)
            response.status = created ? .created : .ok
            return response
        case .insufficient(let available):
            throw HTTPProblem(
                HTTPProblem.Code("sold_out"),
                status: .conflict,
                title: "Not enough seats",
                detail: "\(available) seats are free"
            )
        case .notFound:
            throw HTTPProblem(.notFound, detail: "there is no such show or hold")
        case .notLive(let hold):
            throw HTTPProblem(
                HTTPProblem.Code("hold_not_live"),
                status: .conflict,
                title: "Hold not live",
                detail: "the hold is \(hold.state.rawValue)"
            )
        }
    }
}
