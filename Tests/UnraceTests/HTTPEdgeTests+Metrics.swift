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

/// `unrace serve`'s metrics after the HTTP edge's duplicates.
extension HTTPEdgeTests {
    @Test("unrace serve: GET /metrics after a burst of duplicate POSTs shows the replays (Prometheus text)", arguments: sqlBackends)
    func metricsEndpoint(_ backend: SQLBackend) async throws {
        try await withStore(backend) { _, location in
            let server = try ChildProcess(["serve", "--port", "0", backend == .sqlite ? "--file" : "--database", location])
            defer { server.sendKill() }  // a test that fails early leaves no server running
            try await server.waitFor("listening on")
            guard
                let port = server.printed.split(separator: "\n").first(where: { $0.hasPrefix("listening on") })?
                    .split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
            else {
                Issue.record("no port in \(server.printed)")
                return
            }
            let client = LiveClient(port: port)
            for _ in 0..<6 {
                #expect(
                    try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "\"burst\"")], json: Self.order).status == 201
                )
            }
            // A handler's thrown HTTP error is stored and completes its key: not a body failure.
            let unknownCoupon = #"{"sku":"widget","quantity":1,"coupon":"NOPE"}"#
            #expect(try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "\"nope\"")], json: unknownCoupon).status == 404)
            let metrics = try await client.send(.GET, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.header("Content-Type")?.hasPrefix("text/plain") == true)
            func value(_ label: String, _ labels: [String]) -> Int? {
                metrics.body.split(separator: "\n")
                    .first { line in line.hasPrefix(label + "{") && labels.allSatisfy { line.contains($0) } }
                    .flatMap { Int($0.split(separator: " ").last ?? "") }
            }
            let store = backend == .sqlite ? "sqlite" : "postgres"
            // Every client's idempotency scope is one label: no time series per client.
            #expect(
                value("unrace_operation_claims_total", [#"result="replayed""#, #"scope="principal""#, #"store="\#(store)""#]) == 5,
                "\(metrics.body)"
            )
            #expect(!metrics.body.contains("scope=\"p:"), "no per-client scope in the metrics")
            #expect(value("unrace_operation_claims_total", [#"result="acquired""#, #"store="\#(store)""#]) == 2)
            #expect(value("unrace_operation_body_failures_total", [#"store="\#(store)""#]) ?? 0 == 0, "\(metrics.body)")
            #expect(
                value("unrace_queue_enqueued_total", [#"result="enqueued""#, #"queue="shop-orders""#]) == 2,
                "the order's capture and email"
            )
            // Step latency per store, and the queue's depth read at scrape time.
            let operationSteps = metrics.body.split(separator: "\n")
                .filter {
                    $0.hasPrefix("unrace_step_duration_seconds_count{") && $0.contains(#"api="operations""#)
                        && $0.contains(#"store="\#(store)""#)
                }
                .compactMap { Int($0.split(separator: " ").last ?? "") }
            #expect(operationSteps.reduce(0, +) >= 6, "each POST is at least one timed step")
            let ready = metrics.body.split(separator: "\n")
                .first { $0.hasPrefix("unrace_queue_messages{") && $0.contains(#"state="ready""#) && $0.contains(#"store="\#(store)""#) }
            #expect(ready.flatMap { Double($0.split(separator: " ").last ?? "") } == 2, "\(ready ?? "no gauge")")
            #expect(await server.terminate() == 0)
        }
    }
}
