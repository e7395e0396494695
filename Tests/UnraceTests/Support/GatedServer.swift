import Foundation
import Hummingbird
import NIOHTTP1
import Synchronization
import Testing
import Unrace
import UnraceHTTP
import UnraceHummingbird
import UnraceSQL
import UnraceShop

/// Claims `key` for `principal` the way the middleware's `.conflict` mode does, and never
/// completes it: a holder whose process died. Returns whether the claim was acquired.
func claimAndDie<S: Store>(_ store: S, key: String, principal: String, lease: Duration, clock: any WallClock) async throws -> Bool {
    var configuration = OperationsConfiguration()
    configuration.clock = clock
    configuration.lease = lease
    let dead = try Operations(store: store, configuration: configuration)
    let scope = try #require(PrincipalScope.scope(for: principal))
    if case .acquired = try await dead.begin(key: key, scope: scope) { return true }
    return false
}

/// A handler the test holds in flight: it signals `entered`, waits for `release`, writes one
/// row in the request's transaction, and answers 201 (or 503 the first time, with `failFirst`).
final class Gate: Sendable {
    let entered = Latch()
    let release = Latch()
    let table = uniqueName("work")
    private let count = Mutex(0)
    var runs: Int { count.withLock { $0 } }
    func run() -> Int {
        count.withLock {
            $0 += 1
            return $0
        }
    }
}

func gatedServer<S: SQLStore>(
    _ store: S,
    _ whileInProgress: WhileInProgress,
    failFirst: Bool = false,
    clock: (any WallClock)? = nil,
    _ body: (InProcessClient, Gate) async throws -> Void
) async throws {
    let gate = Gate()
    try await createEffectsTable(store, gate.table)
    var configuration = IdempotencyConfiguration()
    configuration.whileInProgress = whileInProgress
    // A lease no loaded machine outlasts: the held handler's key stays in progress (see
    // `contractOperations`).
    var operationsConfiguration = contractOperations
    if let clock { operationsConfiguration.clock = clock }
    let operations = try Operations(store: store, configuration: operationsConfiguration)
    let router = Router(context: UnraceRequestContext<S.Transaction>.self)
    router.add(middleware: try IdempotencyMiddleware(operations: operations, principal: .everyone, configuration: configuration))
    let table = gate.table
    router.post("work") { _, context -> Response in
        let run = gate.run()
        gate.entered.open()
        await gate.release.waitUnlessCancelled()
        let transaction = try #require(context.idempotency.transaction)
        try await transaction.execute("INSERT INTO \(table) (id, worker, seq) VALUES (?, ?, ?)", [.text("work"), .text("w"), .int(run)])
        let status: HTTPResponse.Status = failFirst && run == 1 ? .serviceUnavailable : .created
        return Response(
            status: status,
            headers: [.contentType: "application/json", .setCookie: "session=first"],
            body: .init(byteBuffer: .init(string: "{\"run\":\(run)}"))
        )
    }
    try await withInProcessServer(router) { client in try await body(client, gate) }
}
