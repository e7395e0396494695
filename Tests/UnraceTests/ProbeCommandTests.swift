import AsyncHTTPClient
import Foundation
import Hummingbird
import Synchronization
import Testing
import Unrace
import UnraceShop

@testable import UnraceProbe

/// The probe's limits and transport: refused inputs, redirects, the report's forms, the cut
/// after sending, and the `unrace probe` command against `unrace serve`.
extension ProbeTests {
    @Test("only loopback and allowed hosts; no NUL, CR or LF; bounded bodies and concurrency — refused before anything is sent")
    func badTargets() throws {
        func code(_ change: (inout ProbeTarget, inout ProbeOptions) -> Void) -> String? {
            var target = ProbeTarget(url: "http://127.0.0.1:1/orders")
            var options = ProbeOptions()
            change(&target, &options)
            do {
                _ = try Prober(target: target, options: options)
                return nil
            } catch let error as UnraceError {
                return error.code.rawValue
            } catch {
                return "\(error)"
            }
        }
        #expect(code { _, _ in } == nil)
        #expect(code { target, _ in target.url = "http://example.com/orders" } == "invalid_argument")
        #expect(
            code { target, _ in
                target.url = "http://example.com/orders"
                target.allowedHosts = ["EXAMPLE.com"]
            } == nil
        )
        #expect(code { target, _ in target.url = "http://127.0.0.1.example.com/x" } == "invalid_argument")
        #expect(code { target, _ in target.url = "http://127.0.0.1@example.com/x" } == "invalid_argument", "userinfo is not the host")
        #expect(code { target, _ in target.url = "http://127.0.0.+1/x" } == "invalid_argument")
        #expect(code { target, _ in target.headers = [.init("Host", "example.com")] } == "invalid_argument")
        #expect(code { target, _ in target.headers = [.init("Content-Length", "0")] } == "invalid_argument")
        #expect(code { target, _ in target.keyHeader = "Content-Length" } == "invalid_argument")
        #expect(
            code { target, _ in
                target.body = [0x7B, 0x7D]
                target.otherBody = [0x7B, 0x7D]
            } == "invalid_argument"
        )
        #expect(code { target, _ in target.url = "http://[::1]:8080/x" } == nil)
        #expect(code { target, _ in target.url = "ftp://127.0.0.1/x" } == "invalid_argument")
        #expect(code { target, _ in target.url = "http://127.0.0.1/x\u{0}" } == "invalid_argument")
        #expect(code { target, _ in target.url = "http://127.0.0.1/x\u{1}" } == "invalid_argument")
        #expect(code { target, _ in target.url = "http://127.0.0.1/a b" } == "invalid_argument")
        // Not an address to inet_pton (a leading zero): it would be looked up as a name.
        #expect(code { target, _ in target.url = "http://127.0.0.08/x" } == "invalid_argument")
        #expect(code { target, _ in target.url = "http://127.00.0.1/x" } == "invalid_argument")
        #expect(code { target, _ in target.url = "http://127.0.0.0/x" } == nil)
        // AsyncHTTPClient refuses these at send time; refused here, before anything is sent.
        #expect(code { target, _ in target.headers = [.init("Authorization", "Bearer a\u{7F}")] } == "invalid_argument")
        #expect(code { target, _ in target.headers = [.init("X-A", "a\u{1}b")] } == "invalid_argument")
        #expect(code { target, _ in target.headers = [.init("X-A", "a\tb")] } == nil)
        #expect(code { target, _ in target.countURL = "http://10.0.0.1/count" } == "invalid_argument")
        #expect(code { target, _ in target.headers = [.init("X-A", "a\r\nX-Injected: 1")] } == "invalid_argument")
        #expect(code { target, _ in target.headers = [.init("Bad Name", "a")] } == "invalid_argument")
        #expect(code { target, _ in target.headers = [.init("idempotency-key", "k")] } == "invalid_argument")
        #expect(code { target, _ in target.method = "PO ST" } == "invalid_argument")
        #expect(
            code { target, _ in target.body = Array(repeating: 0x20, count: ProbeTarget.bodyByteCountMaximum + 1) } == "invalid_argument"
        )
        #expect(code { target, _ in target.countField = "n" } == "invalid_argument", "a count field needs a count URL")
        #expect(code { _, options in options.concurrency = 1 } == "invalid_argument")
        #expect(code { _, options in options.concurrency = 257 } == "invalid_argument")
        #expect(code { _, options in options.requestTimeout = .seconds(121) } == "invalid_argument")
        #expect(code { _, options in options.probes = [.retry, .retry] } == "invalid_argument")
    }

    @Test("a server's long identity is kept short in the report, two long ones stay apart, and the table shows no escape sequence")
    func hostileAnswers() {
        let long = repeatedASCII("x", count: 1 << 20)
        let (one, two) = (ProbeClient.bounded(long + "-1"), ProbeClient.bounded(long + "-2"))
        #expect(one.utf8.count < 400 && two.utf8.count < 400 && one != two)
        #expect(ProbeClient.bounded("order-7") == "order-7")
        let oneCharacter = "x" + String(repeating: "\u{301}", count: 500_000)  // one Character, a megabyte
        #expect(ProbeClient.bounded(oneCharacter).utf8.count < 400)
        let report = ProbeReport(
            target: "http://127.0.0.1:1/x",
            results: [
                ProbeResult(
                    probe: .duplicates,
                    verdict: .clean,
                    summary: "\u{1B}[2J\u{1B}[Hno anomalies",
                    evidence: ["\u{1B}]52;c;cHduZWQ=\u{7}"],
                    exchanges: []
                )
            ]
        )
        #expect(!report.table().unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{7}" }, "\(report.table().debugDescription)")
    }

    @Test("a redirect is an answer, never followed: the host it points to gets no request")
    func noRedirects() async throws {
        let elsewhere = ProbeFixture(.none)
        try await withLiveServer(elsewhere.router()) { other in
            let router = ProbeFixture(.none).router()
            router.post("moved") { _, _ in
                Response(status: .temporaryRedirect, headers: [.location: "http://127.0.0.1:\(other.port)/orders"])
            }
            try await withLiveServer(router) { client in
                var options = ProbeOptions()
                options.probes = [.duplicates, .retry]
                options.concurrency = 4
                let report = try await Prober(target: ProbeTarget(url: "http://127.0.0.1:\(client.port)/moved"), options: options).run()
                #expect(report.results.allSatisfy { $0.exchanges.allSatisfy { $0.status == 307 || $0.status == nil } })
            }
            #expect(await elsewhere.state.ordersReceived == 0)
        }
    }

    @Test("the report's JSON, table and timeline carry the verdicts and the requests")
    func reportForms() async throws {
        let report = try await Self.probe(.noIdempotency, [.duplicates, .missingKey], concurrency: 4)
        let json = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        let results = try #require(json["results"] as? [[String: Any]])
        #expect(results.map { $0["probe"] as? String } == ["duplicates", "missing-key"])
        #expect(results.map { $0["verdict"] as? String } == ["anomaly", "notice"])
        #expect(report.table().contains("1 probe saw an anomaly"))
        let html = report.timeline().html()
        #expect(html.contains("request-4") && html.contains("duplicate creation"))
    }

    @Test("a cut after sending closes the connection once the whole request is out, before any answer")
    func cutAfterSending() async throws {
        let received = AsyncStream<String>.makeStream()
        let release = Latch()
        let router = Router()
        router.post("held") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            received.continuation.yield((request.uri.query ?? "") + " " + String(buffer: body))
            await release.wait()
            return Response(status: .created)
        }
        try await withLiveServer(router) { server in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            // Percent-encoded bytes stay encoded in the request line (a decoded CR LF would split it).
            let url = "http://127.0.0.1:\(server.port)/held?note=a%0D%0Ab"
            let client = ProbeClient(http: http, target: ProbeTarget(url: url), timeout: .seconds(30), origin: .now)
            let body = Array(#"{"sku":"widget","quantity":1}"#.utf8)
            let (exchange, answer) = await client.send(
                "cut",
                method: "POST",
                url: url,
                key: ("\"k\"", "key-1"),
                body: body,
                cut: .afterSending
            )
            #expect(answer == nil && exchange.status == nil)
            #expect(exchange.error == "the probe closed the connection after sending the request")
            let got = try await within(.seconds(60), "the request at the server") {
                var bodies = received.stream.makeAsyncIterator()
                return await bodies.next()
            }
            #expect(got == "note=a%0D%0Ab " + String(decoding: body, as: UTF8.self), "the server got the whole request")
            release.open()
            try await http.shutdown()
        }
    }

    /// Starts `unrace serve` with `arguments` and answers its port.
    static func serve(_ arguments: [String]) async throws -> (ChildProcess, Int) {
        let server = try ChildProcess(["serve", "--port", "0"] + arguments)
        try await server.waitFor("listening on")
        let port = try #require(
            server.printed.split(separator: "\n").first { $0.hasPrefix("listening on") }?
                .split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        )
        return (server, port)
    }

    /// `unrace probe` against the shop at `port`, all probes, 8 at once.
    static func probeCommand(_ port: Int, _ extra: [String] = []) throws -> ChildProcess {
        let base = "http://127.0.0.1:\(port)"
        return try ChildProcess(
            [
                "probe", "\(base)/orders", "--body", #"{"sku":"widget","quantity":1}"#, "--header", "X-Client-Id: prober",
                "--count-url", "\(base)/products/widget", "--count-field", "available", "--etag-url", "\(base)/products/widget",
                "--write-body", #"{"name":"Widget","priceCents":100}"#, "--concurrency", "8", "--timeout", "60",
            ] + extra
        )
    }

    @Test(
        "unrace probe against unrace serve exits 0 and draws its HTML; against --no-idempotency it exits 1 naming the duplicates",
        arguments: sqlBackends
    )
    func commandLine(_ backend: SQLBackend) async throws {
        try await withStore(backend) { _, location in
            let (server, port) = try await Self.serve([backend == .sqlite ? "--file" : "--database", location])
            let client = LiveClient(port: port)
            #expect(
                try await client.send(
                    .PUT,
                    "/products/widget",
                    headers: [("If-None-Match", "*")],
                    json: #"{"name":"Widget","priceCents":100}"#
                ).status == 201
            )
            let html = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("probe") + ".html").path
            defer { try? FileManager.default.removeItem(atPath: html) }
            let clean = try Self.probeCommand(port, ["--html", html])
            #expect(await clean.exitStatus() == 0, "\(clean.printed)")
            #expect(clean.printed.contains("no anomalies"))
            let page = try String(contentsOfFile: html, encoding: .utf8)
            #expect(page.hasPrefix("<!DOCTYPE html>") && page.contains("concurrent duplicates"))
            let unwritable = try Self.probeCommand(port, ["--probe", "missing-key", "--html", "/nonexistent-folder/probe.html"])
            #expect(await unwritable.exitStatus() == 2, "an --html file that cannot be written")
            #expect(unwritable.printed.contains("missing-key"), "the report is printed before the file is written")
            let nothingProved = try ChildProcess([
                "probe", "http://127.0.0.1:\(port)/no-such-route", "--body", "{\"quantity\":1}", "--concurrency", "2",
            ])
            #expect(await nothingProved.exitStatus() == 3, "every probe skipped: a request never accepted proves nothing")
            #expect(nothingProved.printed.contains("every probe was skipped: nothing was proved"))
            #expect(await server.terminate() == 0)
        }
        guard backend == .sqlite else { return }
        try await withStore(.sqlite) { _, location in
            let (server, port) = try await Self.serve(["--file", location, "--no-idempotency"])
            _ = try await LiveClient(port: port).send(
                .PUT,
                "/products/widget",
                headers: [("If-None-Match", "*")],
                json: #"{"name":"Widget","priceCents":100}"#
            )
            let naive = try Self.probeCommand(port, ["--probe", "duplicates", "--json"])
            #expect(await naive.exitStatus() == 1)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(naive.printed.utf8)) as? [String: Any])
            let result = try #require((json["results"] as? [[String: Any]])?.first)
            #expect(result["verdict"] as? String == "anomaly")
            #expect((result["summary"] as? String)?.contains("duplicate creation: one key, 8 distinct resources") == true, "\(result)")
            #expect(await server.terminate() == 0)
        }
        let refused = try ChildProcess(["probe", "http://example.com/orders"], captureErrors: true)
        #expect(await refused.exitStatus() == 64)
        #expect(refused.printed.contains("neither loopback nor allowed"), "\(refused.printed)")
    }

    // README: "Probe your own API" — the library form, verbatim.
    static func readmeProbe(port: Int) async throws {
        var target = ProbeTarget(url: "http://127.0.0.1:\(port)/orders", body: Array(#"{"sku":"widget","quantity":1}"#.utf8))
        target.headers = [.init("Authorization", "Bearer staging-token")]
        var options = ProbeOptions()
        options.probes = [.duplicates, .retry, .keyReuse]
        let report = try await Prober(target: target, options: options).run()
        #expect(!report.hasAnomaly, "\(report.table())")
    }

    @Test("the README's library snippet runs: clean on a correct service")
    func readmeSnippet() async throws {
        try await withLiveServer(ProbeFixture(.none).router()) { client in try await Self.readmeProbe(port: client.port) }
    }
}
