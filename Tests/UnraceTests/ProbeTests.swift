import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization
import Testing
import Unrace
import UnraceShop

@testable import UnraceProbe

/// `unrace probe`: each probe sees the anomaly it is for on a service that has it, and stays quiet
/// on one that does not; the real shops (Hummingbird on SQLite and PostgreSQL, the Vapor example)
/// are clean; the prober only talks to the hosts it was given.
@Suite("Probe", .timeLimit(.minutes(10)))
struct ProbeTests {
    /// A target on the fixture at `port`.
    static func target(_ port: Int) -> ProbeTarget {
        var target = ProbeTarget(url: "http://127.0.0.1:\(port)/orders", body: Array(#"{"sku":"widget","quantity":1}"#.utf8))
        target.countURL = "http://127.0.0.1:\(port)/count"
        target.countField = "count"
        target.etagURL = "http://127.0.0.1:\(port)/products/p"
        target.writeBody = Array(#"{"name":"Widget","priceCents":100}"#.utf8)
        return target
    }

    /// Runs `probes` against a fixture with `fault`.
    static func probe(_ fault: ProbeFixture.Fault, _ probes: [ProbeKind], concurrency: Int = 16) async throws -> ProbeReport {
        try await withLiveServer(ProbeFixture(fault).router()) { client in
            var options = ProbeOptions()
            options.probes = probes
            options.concurrency = concurrency
            options.requestTimeout = .seconds(60)  // the whole suite may be running beside it
            return try await Prober(target: target(client.port), options: options).run()
        }
    }

    static func result(_ report: ProbeReport, _ probe: ProbeKind) throws -> ProbeResult {
        try #require(report.results.first { $0.probe == probe })
    }

    @Test("duplicates: a service without idempotency creates one resource per request, and the probe names them")
    func duplicatesSeen() async throws {
        let result = try Self.result(try await Self.probe(.noIdempotency, [.duplicates]), .duplicates)
        #expect(result.verdict == .anomaly)
        #expect(result.summary.contains("duplicate creation: one key, 16 distinct resources"))
        #expect(result.evidence.filter { $0.contains("/orders/") }.count >= 8, "the distinct ids are the evidence")
        #expect(result.evidence.contains { $0.contains("16 executions, at most 1 expected") }, "the count moved 16 times")
        let clean = try Self.result(try await Self.probe(.none, [.duplicates]), .duplicates)
        #expect(clean.verdict == .clean, "\(clean.summary)")
        #expect(clean.summary.contains("the same answer to all, 1 resource"))
    }

    @Test("retry: a service that forgets a finished key executes the retry again; a correct one replays every retry")
    func retrySeen() async throws {
        let result = try Self.result(try await Self.probe(.forgetsFinishedKeys, [.retry]), .retry)
        #expect(result.verdict == .anomaly)
        #expect(result.summary.contains("after a complete answer: executed again"))
        #expect(result.evidence.contains { $0.contains("at most 3 expected") })
        let clean = try Self.result(try await Self.probe(.none, [.retry]), .retry)
        #expect(clean.verdict == .clean, "\(clean.evidence)")
        #expect(clean.exchanges.contains { $0.actor == "cut-after-head" && $0.error?.contains("after the answer's head") == true })
    }

    @Test("key reuse: a service that answers a used key with another body from its stored answer is caught; 422 is clean")
    func keyReuseSeen() async throws {
        let result = try Self.result(try await Self.probe(.keyIgnoresBody, [.keyReuse]), .keyReuse)
        #expect(result.verdict == .anomaly)
        #expect(result.summary.contains("got the first request's answer"))
        let clean = try Self.result(try await Self.probe(.none, [.keyReuse]), .keyReuse)
        #expect(clean.verdict == .clean && clean.summary == "refused: 422, as the IETF draft says")
        // A control request shows the other body is acceptable on its own: the 422 was for the key.
        #expect(clean.exchanges.map(\.actor) == ["request-1", "request-2", "control"] && clean.exchanges.last?.status == 201)
        let other4xx = try Self.result(try await Self.probe(.conflictWhileRunning, [.keyReuse]), .keyReuse)
        #expect(other4xx.verdict == .clean && other4xx.summary == "refused: 400 (the IETF draft says 422)")
    }

    @Test("'not yet' answers (409 with Retry-After while the key runs) are not different answers; the retries wait them out")
    func deferredAnswers() async throws {
        let report = try await Self.probe(.conflictWhileRunning, [.duplicates, .retry])
        for result in report.results { #expect(result.verdict == .clean, "\(result.probe): \(result.summary) \(result.evidence)") }
        #expect(try Self.result(report, .duplicates).exchanges.contains { $0.status == 409 }, "the burst met the running key")
    }

    @Test("resources are told apart by Location's path and query, resolved against the target; one resource is one however it is written")
    func identities() async throws {
        let router = Router()
        let next = Mutex(0)
        // Each request a new order, named by a query (the last path segment is the same for all).
        router.post("orders") { _, _ -> Response in
            let id = next.withLock {
                $0 += 1
                return $0
            }
            return Response(status: .created, headers: [.location: id.isMultiple(of: 2) ? "/orders?id=\(id)" : "orders?id=\(id)"])
        }
        try await withLiveServer(router) { client in
            var options = ProbeOptions()
            options.probes = [.duplicates]
            options.concurrency = 4
            let result = try Self.result(
                try await Prober(target: ProbeTarget(url: "http://127.0.0.1:\(client.port)/orders"), options: options).run(),
                .duplicates
            )
            #expect(result.verdict == .anomaly && result.summary.contains("4 distinct resources"), "\(result.summary)")
        }
        let same = Router()
        // One order, named absolutely, relatively and by path.
        let forms = Mutex(0)
        let serverPort = Mutex(0)
        same.post("orders") { _, _ -> Response in
            let form = forms.withLock {
                $0 += 1
                return $0 % 3
            }
            let port = serverPort.withLock { $0 }
            let location = ["http://127.0.0.1:\(port)/orders/7", "/orders/7", "7"][form]
            return Response(status: .created, headers: [.location: location])
        }
        try await withLiveServer(same) { client in
            serverPort.withLock { $0 = client.port }
            var options = ProbeOptions()
            options.probes = [.duplicates]
            options.concurrency = 6
            let result = try Self.result(
                try await Prober(target: ProbeTarget(url: "http://127.0.0.1:\(client.port)/orders/"), options: options).run(),
                .duplicates
            )
            #expect(!result.summary.contains("duplicate creation"), "\(result.summary)")
        }
    }

    @Test("a request the service never accepts proves nothing: skipped, not clean")
    func neverAccepted() async throws {
        try await withLiveServer(ProbeFixture(.none).router()) { client in
            var options = ProbeOptions()
            options.probes = [.duplicates, .retry, .keyReuse, .missingKey]
            options.concurrency = 4
            let target = ProbeTarget(url: "http://127.0.0.1:\(client.port)/no-such-route", body: Array(#"{"quantity":1}"#.utf8))
            let report = try await Prober(target: target, options: options).run()
            for result in report.results {
                #expect(result.verdict == .skipped, "\(result.probe): \(result.summary)")
                // Each request is answered 404; on a loaded machine one may instead time out
                // ("no answer"), which proves nothing either.
                #expect(
                    result.summary.contains("never accepted (")
                        && (result.summary.contains("× 404") || result.summary.contains("× no answer")),
                    "\(result.probe): \(result.summary)"
                )
            }
        }
    }

    @Test("a retry compared with a retry when neither was accepted is never clean: a key stuck 'not yet' is a notice, others prove nothing")
    func retriesNeverAccepted() {
        func exchange(_ status: Int?, error: String? = nil) -> ProbeExchange {
            ProbeExchange(
                actor: "retry",
                request: "POST /orders",
                key: "key-3",
                status: status,
                error: error,
                location: nil,
                etag: nil,
                identity: nil,
                body: "",
                bodySHA256: status == nil ? "" : "same",
                started: 0,
                ended: 0
            )
        }
        let stuck = ProbeRun.compare(exchange(409), exchange(409), after: "a cut")
        #expect(stuck.0 == .notice && stuck.1.contains("still 409 after every retry"), "\(stuck)")
        let failing = ProbeRun.compare(exchange(500), exchange(500), after: "a cut")
        #expect(failing.0 == .skipped && failing.1.contains("never accepted (500, then 500)"), "\(failing)")
        let unanswered = ProbeRun.compare(exchange(nil, error: "timed out"), exchange(503), after: "a cut")
        #expect(unanswered.0 == .notice, "\(unanswered)")
        let refusedAfterWaiting = ProbeRun.compare(exchange(409), exchange(422), after: "a cut")
        #expect(refusedAfterWaiting.0 == .notice && refusedAfterWaiting.1.contains("answered 409, then 422"), "\(refusedAfterWaiting)")
        // Accepted answers are still compared as before.
        #expect(ProbeRun.compare(exchange(201), exchange(201), after: "a cut").0 == .clean)
        #expect(ProbeRun.compare(exchange(201), exchange(409), after: "a cut").0 == .notice)
    }

    @Test("a count that moves from 0 to Int64.min, one request moving it by -1, is reported, not a crash")
    func countExcessAtTheBounds() {
        let excess = ProbeRun.countExcess(before: 0, after: .min, unit: -1, executions: 3)
        #expect(
            excess?.contains("one request moves it by -1: 9223372036854775808 executions, at most 3 expected") == true,
            "\(excess ?? "nil")"
        )
        #expect(ProbeRun.countExcess(before: 0, after: -3, unit: -1, executions: 3) == nil)
        #expect(ProbeRun.countExcess(before: .max, after: .min, unit: 1, executions: 3) == nil, "a move the other way is not counted")
    }

    @Test("missing key: accepted is a notice (not an anomaly), refused is clean")
    func missingKeySeen() async throws {
        let report = try await Self.probe(.acceptsWithoutKey, [.missingKey])
        #expect(try Self.result(report, .missingKey).verdict == .notice)
        #expect(!report.hasAnomaly)
        let clean = try Self.result(try await Self.probe(.none, [.missingKey]), .missingKey)
        #expect(clean.verdict == .clean && clean.summary.contains("428"))
    }

    @Test(
        "missing key: a key-less answer other than 2xx or a refusal says something only beside an accepted keyed request; 'not yet' is no refusal",
        arguments: [
            (keyless: 502, keyed: 502, verdict: ProbeVerdict.skipped, summary: "never accepted (1 × 502)"),
            (keyless: 503, keyed: 201, verdict: .skipped, summary: "inconclusive: answered 503"),
            (keyless: 429, keyed: 201, verdict: .skipped, summary: "inconclusive: answered 429"),
            (keyless: 500, keyed: 201, verdict: .notice, summary: "answered 500 without a key"),
            (keyless: 301, keyed: 201, verdict: .notice, summary: "answered 301 without a key"),
            (keyless: 400, keyed: 201, verdict: .clean, summary: "refused without a key: 400"),
        ]
    )
    func missingKeyOtherAnswers(_ answers: (keyless: Int, keyed: Int, verdict: ProbeVerdict, summary: String)) async throws {
        let router = Router()
        router.post("orders") { request, _ -> Response in
            let keyed = request.headers[HTTPField.Name("Idempotency-Key")!] != nil
            let status = HTTPResponse.Status(code: keyed ? answers.keyed : answers.keyless)
            return Response(status: status, headers: status.code == 201 ? [.location: "/orders/\(UUID())"] : [:])
        }
        try await withLiveServer(router) { client in
            var options = ProbeOptions()
            options.probes = [.missingKey]
            options.requestTimeout = .seconds(60)
            let target = ProbeTarget(url: "http://127.0.0.1:\(client.port)/orders", body: Array(#"{"quantity":1}"#.utf8))
            let result = try Self.result(try await Prober(target: target, options: options).run(), .missingKey)
            #expect(result.verdict == answers.verdict && result.summary.contains(answers.summary), "\(result.summary)")
        }
    }

    @Test(
        "retry without a count: a cut before the answer whose retries agree is not called clean without saying the cut request went unchecked"
    )
    func retryUncheckedWithoutCount() async throws {
        try await withLiveServer(ProbeFixture(.none).router()) { client in
            var options = ProbeOptions()
            options.probes = [.retry]
            options.requestTimeout = .seconds(60)
            var target = Self.target(client.port)
            target.countURL = nil
            target.countField = nil
            let result = try Self.result(try await Prober(target: target, options: options).run(), .retry)
            #expect(result.verdict == .clean && result.summary == "replayed where checked (see the notes)", "\(result.summary)")
            #expect(result.evidence.contains { $0.contains("whether the cut request ran too is not checked") }, "\(result.evidence)")
        }
    }

    @Test("a server's text cannot forge a line of the table: newlines in a summary or evidence are shown as \\u{a}")
    func tableLinesCannotBeForged() {
        let result = ProbeResult(
            probe: .duplicates,
            verdict: .anomaly,
            summary: "answers differ\n\nno anomalies",
            evidence: ["body: {\"x\":\"\r\nno anomalies\"}"],
            exchanges: []
        )
        let table = ProbeReport(target: "POST http://127.0.0.1/orders\nno anomalies", results: [result]).table()
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(!lines.contains("no anomalies") && lines.last == "1 probe saw an anomaly", "\(table)")
        #expect(table.contains("answers differ\\u{a}\\u{a}no anomalies"), "\(table)")
    }

    @Test("lost update: writes that ignore If-Match are each answered 200 and all but one are lost; If-Match handling is clean")
    func lostUpdateSeen() async throws {
        let result = try Self.result(try await Self.probe(.lastWriterWins, [.lostUpdate]), .lostUpdate)
        #expect(result.verdict == .anomaly)
        #expect(result.summary.contains("lost update with If-Match \"1\": 16 writes were each answered 2xx"))
        #expect(result.evidence.contains { $0.contains("answered 2xx but not standing") })
        let clean = try Self.result(try await Self.probe(.none, [.lostUpdate]), .lostUpdate)
        #expect(clean.verdict == .clean, "\(clean.summary)")
        #expect(clean.summary.contains("one write won, 15 got 412") && clean.summary.contains("refused with 428"))
    }

    @Test("the reference shop is clean on every probe", arguments: sqlBackends)
    func shopClean(_ backend: SQLBackend) async throws {
        try await withLiveShop(backend) { client, _, _ in
            let product = try await client.send(
                .PUT,
                "/products/widget",
                headers: [("If-None-Match", "*")],
                json: #"{"name":"Widget","priceCents":100}"#
            )
            #expect(product.status == 201)
            let report = try await Prober(target: Self.shopTarget(client.port), options: Self.options).run()
            for result in report.results { #expect(result.verdict == .clean, "\(result.probe): \(result.summary) \(result.evidence)") }
            #expect(report.results.count == ProbeKind.allCases.count)
            #expect(report.results.map(\.exchanges.count).reduce(0, +) <= Self.options.requestCountMaximum)
        }
    }

    @Test("the shop without its idempotency middleware: the duplicates probe reports duplicate creation, with the ids")
    func shopWithoutIdempotency() async throws {
        var configuration = ShopConfiguration()
        configuration.idempotency = false
        try await withLiveShop(.sqlite, configuration) { client, _, _ in
            _ = try await client.send(
                .PUT,
                "/products/widget",
                headers: [("If-None-Match", "*")],
                json: #"{"name":"Widget","priceCents":100}"#
            )
            var options = Self.options
            options.probes = [.duplicates]
            let result = try Self.result(try await Prober(target: Self.shopTarget(client.port), options: options).run(), .duplicates)
            #expect(result.verdict == .anomaly)
            #expect(result.summary.contains("duplicate creation"))
            #expect(result.evidence.contains { $0.contains("request-") && $0.contains("/orders/") })
        }
    }

    static var options: ProbeOptions {
        var options = ProbeOptions()
        options.concurrency = 16
        options.requestTimeout = .seconds(60)
        return options
    }

    /// The shops' `POST /orders` as a probe target: the widget's stock (`available` in the
    /// Hummingbird shop, `stock` in the Vapor example) counts the orders.
    static func shopTarget(_ port: Int, countField: String = "available") -> ProbeTarget {
        var target = ProbeTarget(url: "http://127.0.0.1:\(port)/orders", body: Array(#"{"sku":"widget","quantity":1}"#.utf8))
        target.headers = [.init("X-Client-Id", "prober")]
        target.countURL = "http://127.0.0.1:\(port)/products/widget"
        target.countField = countField
        target.etagURL = target.countURL
        target.writeBody = Array(#"{"name":"Widget","priceCents":100}"#.utf8)
        return target
    }

}
