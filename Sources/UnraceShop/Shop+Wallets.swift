import Foundation
import Hummingbird
import Unrace
import UnraceHTTP

/// A wallet: a ledger account that cannot overdraw.
struct WalletResponse: ResponseEncodable {
    var id: String
    var balanceCents: Int64
    var pendingDebitsCents: Int64
    var creditsCents: Int64
    var debitsCents: Int64
}

/// `POST /wallets/transfers` body: the transfer id is the client's idempotency key.
struct TransferRequest: Decodable, Sendable {
    var id: String
    var from: String
    var to: String
    var amountCents: Int64
}

/// `POST /wallets/transfers` answer.
struct TransferResponse: ResponseEncodable {
    var id: String
    var result: String
}

extension Shop {
    /// The account money enters wallets from; it may go negative (it has no flags).
    static var bankAccount: String { "bank" }

    /// `PUT /wallets/{id}`: opens a wallet (201), or finds the same one (200).
    func openWallet(_ request: Request, _ context: Context) async throws -> Response {
        let id = try walletID(context)
        let result = try await ledger.createAccounts([Account(id: id, ledger: 1, code: 1, flags: [.debitsMustNotExceedCredits])])
        switch result.first {
        case .created: return try await walletResponse(id, status: .created, request, context, conditionalGet: false)
        case .exists: return try await walletResponse(id, status: .ok, request, context, conditionalGet: false)
        default: throw HTTPProblem(.conflict, detail: "an account with this id exists and is not a wallet")
        }
    }

    /// `GET /wallets/{id}`: the balances, with an `ETag` of the account's totals;
    /// `If-None-Match` with the current tag answers 304.
    func wallet(_ request: Request, _ context: Context) async throws -> Response {
        try await walletResponse(try walletID(context), status: .ok, request, context, conditionalGet: true)
    }

    /// `POST /wallets/transfers`: one ledger transfer. The transfer id makes it idempotent the
    /// ledger's way: a repeat answers `exists` (200) and moves nothing; a repeat with other
    /// fields answers 409; a wallet that would overdraw answers 409 `exceeds_credits`.
    func transfer(_ request: Request, _ context: Context) async throws -> Response {
        let input = try await decode(TransferRequest.self, request, context)
        guard input.amountCents > 0, input.amountCents <= 1_000_000_000_00 else {
            throw HTTPProblem(.badRequest, detail: "amountCents must be between 1 and 100000000000")
        }
        let results: [TransferResult]
        do {
            results = try await ledger.submit([Transfer(id: input.id, debit: input.from, credit: input.to, amount: input.amountCents)])
        } catch let error as UnraceError where error.code == .invalidArgument || error.code == .invalidKey {
            throw HTTPProblem(.badRequest, detail: "a transfer or account id is not valid")
        }
        let result = results.first ?? .created
        switch result {
        case .created, .exists:
            var response = try TransferResponse(id: input.id, result: result.code).response(from: request, context: context)
            response.status = result == .created ? .created : .ok
            return response
        case .debitAccountNotFound, .creditAccountNotFound:
            throw HTTPProblem(.notFound, detail: "no such wallet: \(result.code)")
        default:
            throw HTTPProblem(
                HTTPProblem.Code(result.code),
                status: .conflict,
                title: "Transfer refused",
                detail: "the ledger answered \(result.code)"
            )
        }
    }

    /// The wallet's representation; on a GET (`conditionalGet`), 304 when `If-None-Match` names its tag.
    private func walletResponse(
        _ id: String,
        status: HTTPResponse.Status,
        _ request: Request,
        _ context: Context,
        conditionalGet: Bool
    ) async throws -> Response {
        guard let account = try await ledger.lookupAccounts([id]).first else {
            throw HTTPProblem(.notFound, detail: "there is no such wallet")
        }
        let tag = EntityTag(
            opaque: Fingerprint.text("\(account.creditsPosted)/\(account.debitsPosted)/\(account.debitsPending)/\(account.creditsPending)")
                .hex
        )
        if conditionalGet, let tag, let header = request.headers[.ifNoneMatch],
            !(try EntityTagCondition(parsing: header).ifNoneMatchHolds(current: tag))
        {
            return Response(status: .notModified, headers: [.eTag: tag.description])
        }
        let body = WalletResponse(
            id: id,
            balanceCents: account.balance,
            pendingDebitsCents: account.debitsPending,
            creditsCents: account.creditsPosted,
            debitsCents: account.debitsPosted
        )
        var response = try body.response(from: request, context: context)
        response.status = status
        if let tag { response.headers[.eTag] = tag.description }
        return response
    }

    private func walletID(_ context: Context) throws -> String {
        let id = try context.parameters.require("id")
        guard ShopNames.isSKU(id), id != Self.bankAccount else {
            throw HTTPProblem(.badRequest, detail: "a wallet id is 1 to 64 characters of A-Z a-z 0-9 _ - (not \"bank\")")
        }
        return id
    }
}
