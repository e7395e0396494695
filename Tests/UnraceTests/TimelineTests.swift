import Foundation
import Testing

@testable import UnraceSimulation

/// The HTML timelines: drawn by `unrace simulate --html` and `unrace check --html`, loaded in a
/// real headless Chromium, and checked through the DOM it builds.
@Suite("Timelines", .timeLimit(.minutes(10)))
struct TimelineTests {
    /// Seeds whose naive run breaks an invariant and whose guarded run does not.
    static let walletSeed: UInt64 = 1
    static let zombieSeed: UInt64 = 3

    @Test("wallet and zombie-holder timelines in headless Chromium: lanes, marks, leases, and the violation in the naive panel only")
    func chromiumDOM() async throws {
        guard let chromium = Chromium.path else {
            if Chromium.required { Issue.record("chromium is not installed; scripts/test installs it (Debian's chromium)") }
            return
        }
        let folder = try temporaryFolder("timeline")
        for (scenario, seed) in [("wallet", Self.walletSeed), ("zombie-holder", Self.zombieSeed)] {
            let file = folder.appendingPathComponent("\(scenario).html").path
            let simulate = try ChildProcess(["simulate", "--scenario", scenario, "--seed", "\(seed)", "--html", file])
            #expect(await simulate.exitStatus() == 0, "guarded runs keep every invariant")
            let dom = try await Chromium.run(chromium, ["--dump-dom", "file://\(file)"])
            let sections = dom.components(separatedBy: "<section").dropFirst()
            let naive = try #require(sections.first { $0.contains("\(scenario) · naive handler") }, "no naive panel in \(dom.prefix(400))")
            let guarded = try #require(sections.first { $0.contains("\(scenario) · guarded handler") })
            // The naive panel shows what broke; the guarded one says nothing did.
            #expect(naive.contains(#"class="panel broken""#))
            #expect(naive.contains(#"<g class="violation">"#))
            #expect(naive.contains(#"<p class="violation" data-invariant=""#))
            #expect(guarded.contains(#"class="panel clean""#))
            #expect(!guarded.contains(#"class="violation""#))
            #expect(guarded.contains("no invariant broken"))
            for panel in [naive, guarded] {
                #expect(occurrences(of: #"<g class="step"#, in: panel) >= 3, "marks for the steps")
                #expect(panel.contains(#"<pre class="trace">"#), "the text trace beside the picture")
            }
            switch scenario {
            case "wallet":
                // The seed's race: two clients read 100, both write.
                for lane in ["client-1", "client-2"] { #expect(naive.contains(#"data-lane="\#(lane)""#)) }
                #expect(naive.contains("read balance 100"))
                #expect(naive.contains("money-conserved"))
            default:
                // A broker delivering jobs, workers holding leases with fencing tokens, a late write refused.
                #expect(guarded.contains(#"data-lane="broker""#))
                #expect(guarded.contains(#"data-lane="store""#))
                #expect(guarded.contains(#"<g class="lease" data-token="1">"#))
                #expect(guarded.contains(#"<g class="lease" data-token="2">"#))
                #expect(guarded.contains("redelivery"))
                #expect(guarded.contains("✗ fenced"))
            }
            let picture = folder.appendingPathComponent("\(scenario).png").path
            _ = try await Chromium.run(chromium, ["--screenshot=\(picture)", "--window-size=1600,1000", "file://\(file)"])
            let size = (try FileManager.default.attributesOfItem(atPath: picture)[.size] as? Int) ?? 0
            #expect(size > 10_000, "a screenshot of \(scenario) at \(picture)")
            print("timeline screenshot: \(picture)")
        }
    }

    @Test("the same seed draws byte-identical HTML; another seed draws another")
    func deterministic() async throws {
        func page(_ seed: UInt64) async -> String {
            var options = SimulationOptions()
            options.tracing = true
            let scenario = Scenario.named("payment-capture")!
            var panels: [Timeline.Panel] = []
            for handler in HandlerKind.allCases {
                panels.append(Timeline.Panel(await Simulator.run(scenario, handler, seed: seed, options: options)))
            }
            // One title for every seed: the pages differ only if the drawings do.
            return Timeline(title: "payment-capture", panels: panels).html()
        }
        let first = await page(11)
        #expect(first == (await page(11)))
        #expect(first != (await page(12)))
        #expect(!first.contains("<script"), "no script")
        #expect(!first.contains("src=") && !first.contains("href="), "nothing fetched")
    }

    @Test("hostile names cannot break out of the markup: quotes (with combining marks), angle brackets, NUL, an empty trace")
    func hostileInput() async throws {
        let actor = "w\"\u{301}/onmouseover=alert(1)"
        let lines = [
            "<script>alert(1)</script> settings",
            "t=0.000s   \(actor)   store.claim job → acquired, token 99999999999999999999",
            "t=0.001s   x'<b>   text with \u{0}NUL & <img src=x onerror=alert(1)>",
        ]
        let page = Timeline(
            title: "t\"<>",
            panels: [
                Timeline.Panel(title: "p\"\u{301} onload=x", lines: lines, violations: [Violation("inv\"\u{301}", "<b>d</b>")]),
                Timeline.Panel(title: "empty", lines: [], violations: []),
            ]
        ).html()
        #expect(!page.contains("<script>alert"))
        #expect(!page.contains("<img"))
        #expect(!page.unicodeScalars.contains("\u{0}"))
        #expect(page.contains("&quot;\u{301}/onmouseover=alert(1)"), "a quote with a combining mark is still escaped")
        guard let chromium = Chromium.path else { return }
        let file = try temporaryFolder("hostile").appendingPathComponent("hostile.html")
        try Data(page.utf8).write(to: file)
        let dom = try await Chromium.run(chromium, ["--dump-dom", file.absoluteString])
        #expect(
            !dom.contains("onmouseover=\"") && !dom.contains("onload=\"") && !dom.contains("onerror=\""),
            "no event handler attribute in the DOM"
        )
        #expect(!dom.contains("<script>alert") && !dom.contains("<img"))
    }

    @Test("a 10,000-operation history collapses idle stretches, caps its marks, says what it left out, and stays under 5 MB")
    func largeHistory() throws {
        var entries: [HistoryEntry] = []
        for index in 0..<10_000 {
            let operation = "capture:\(index)"
            entries.append(HistoryEntry(type: "request", operation: operation, status: 201))
            var effect = HistoryEntry(type: "effect", operation: operation)
            effect.position = Int64(index + 1)
            effect.actor = "worker-\(index % 4)"
            entries.append(effect)
        }
        // One duplicate effect, the anomaly the picture must show.
        var again = HistoryEntry(type: "effect", operation: "capture:7")
        again.position = 10_001
        again.actor = "worker-3"
        entries.append(again)
        let report = HistoryChecker.check(entries)
        #expect(report.duplicateEffects.count == 1)
        let html = Timeline(title: "fault run", panels: [Timeline.Panel(history: entries, report: report, title: "history")]).html()
        #expect(html.utf8.count < 5_000_000)
        #expect(occurrences(of: #"<g class="step"#, in: html) <= Timeline.marksMaximum + 1)
        #expect(html.contains(#"class="step left-out""#))
        #expect(html.contains("steps left out"))
        #expect(html.contains("effects-at-most-once"))
        #expect(html.contains("capture:7 ✗ again"))
        for worker in 0..<4 { #expect(html.contains(#"data-lane="worker-\#(worker)""#)) }
    }

    @Test("a history's marks are drawn in the order of their recorded positions, not of the file's lines")
    func historyInPositionOrder() {
        let history: [HistoryEntry] = [
            .request("a", status: 201), .request("b", status: 201),
            .effect("a", stream: "s", sequence: 1, position: 2, actor: "w1"),
            .effect("b", stream: "s", sequence: 2, position: 1, actor: "w2"),
        ]
        let panel = Timeline.Panel(history: history, report: HistoryChecker.check(history), title: "merged logs")
        let drawn = Array(panel.lines.dropFirst())
        #expect(drawn.count == 4 && drawn[0].contains("request a") && drawn[1].contains("request b"), "requests keep their lines: \(drawn)")
        #expect(drawn.count == 4 && drawn[2].contains("effect b") && drawn[3].contains("effect a"), "effects by position: \(drawn)")
    }

    @Test("idle runs longer than the limit collapse into one mark that says how many steps it stands for")
    func idleCollapse() {
        let lines = ["settings"] + (0..<10).map { "t=0.\($0)s   worker-1         idle" } + ["t=1.0s   worker-2         work on job-1"]
        let (settings, steps, total) = Timeline.marks(lines)
        #expect(settings == ["settings"])
        #expect(total == 11)
        #expect(steps.count == 2)
        #expect(steps[0].kind == .collapsed && steps[0].count == 10)
        #expect(steps[1].text == "work on job-1")
    }

    @Test("unrace demo --html draws one race of each kind: naive broken, guarded clean, for the same seed")
    func demoHTML() async throws {
        let folder = try temporaryFolder("demo-html")
        let page = folder.appendingPathComponent("demo.html").path
        let demo = try ChildProcess(["demo", "--operations", "10", "--json", "--html", page])
        #expect(await demo.exitStatus() == 0)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(occurrences(of: #"class="panel broken""#, in: html) == 3)
        #expect(occurrences(of: #"class="panel clean""#, in: html) == 3)
        for scenario in ["payment-capture", "wallet", "order-lifecycle"] {
            #expect(html.contains("\(scenario) · naive handler") && html.contains("\(scenario) · guarded handler"))
        }
    }

    @Test("unrace check --html draws a real history file")
    func checkHTML() async throws {
        let folder = try temporaryFolder("check-html")
        let history = folder.appendingPathComponent("history.jsonl")
        try Data(
            """
            {"type":"request","operation":"order:1","status":201}
            {"type":"effect","operation":"order:1","position":1,"actor":"worker-1"}
            {"type":"effect","operation":"order:1","position":2,"actor":"worker-2"}

            """.utf8
        ).write(to: history)
        let page = folder.appendingPathComponent("history.html").path
        let check = try ChildProcess(["check", history.path, "--html", page])
        #expect(await check.exitStatus() == 1, "the duplicate is an anomaly")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.contains(#"data-lane="worker-1""#) && html.contains(#"data-lane="worker-2""#))
        #expect(html.contains("order:1 ✗ again"))
        #expect(html.contains(#"<g class="violation">"#))
    }
}

func occurrences(of needle: String, in haystack: some StringProtocol) -> Int {
    haystack.components(separatedBy: needle).count - 1
}

func temporaryFolder(_ prefix: String) throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName(prefix))
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

/// Debian's headless Chromium, which `scripts/test` installs.
enum Chromium {
    static let path: String? = {
        let candidates = [ProcessInfo.processInfo.environment["UNRACE_CHROMIUM"], "/usr/bin/chromium", "/usr/bin/chromium-browser"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Required where the suite runs in full (scripts/test, CI).
    static let required = TestPostgres.required

    /// Runs Chromium headless on `arguments`; returns what it printed on standard output.
    /// A browser that hangs must not hang the suite: after 60 s its whole process group is killed.
    static func run(_ path: String, _ arguments: [String]) async throws -> String {
        // As root (CI containers) Chromium needs --no-sandbox; the pages are our own files.
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars"]
        let browser = try ChildProcess(executable: path, flags + arguments, errors: .discarded, processGroup: true)
        let status = await browser.exitStatus(limit: .seconds(60))
        guard status == 0 else { throw ChromiumError(status: status, arguments: arguments) }
        return browser.printed
    }

    struct ChromiumError: Error, CustomStringConvertible {
        var status: Int32
        var arguments: [String]
        var description: String { "chromium exited \(status) for \(arguments)" }
    }
}
