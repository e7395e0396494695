import Foundation
import Testing
import Unrace
import UnraceSimulation

/// The history checker has teeth: each anomaly planted in a clean history is found, with its
/// entries, and the clean history passes. Also through `unrace check`.
@Suite("History checker")
struct HistoryCheckerTests {
    /// Two accepted orders, each captured (moving the merchant's balance) and emailed, in order.
    static let clean: [HistoryEntry] = [
        .request("order:o1", status: 201, changes: ["stock:widget": -2], actor: "client"),
        .request("order:o2", status: 201, changes: ["stock:widget": -1], actor: "client"),
        .request("order:o3", status: 409, changes: [:], actor: "client"),  // refused: no expectation
        .expect("capture:o1", changes: ["merchant": 500]), .expect("email:o1"),
        .expect("capture:o2", changes: ["merchant": 250]), .expect("email:o2"),
        .effect("order:o1", actor: "serve"), .effect("order:o2", actor: "serve"),
        .effect("capture:o1", stream: "o1", sequence: 1, position: 1, actor: "w1"),
        .effect("capture:o2", stream: "o2", sequence: 1, position: 2, actor: "w2"),
        .effect("email:o2", stream: "o2", sequence: 2, position: 3, actor: "w2"),
        .effect("email:o1", stream: "o1", sequence: 2, position: 4, actor: "w1"),
        .account("stock:widget", initial: 100, final: 97),
        .account("merchant", initial: 0, final: 750),
        HistoryEntry(type: "fault", actor: "w1", name: "kill"),
    ]

    @Test("a clean history has no anomaly")
    func clean() {
        let report = HistoryChecker.check(Self.clean)
        #expect(report.isClean, "\(report.text())")
        #expect(report.expectedOperations == 6)
        #expect(report.entries["fault"] == 1)
    }

    @Test("a planted duplicate capture: a duplicate effect, and the merchant's balance off by one capture")
    func duplicate() {
        var history = Self.clean
        history.append(.effect("capture:o1", stream: "o1", sequence: 1, position: 5, actor: "w3"))
        history[history.firstIndex { $0.name == "merchant" }!] = .account("merchant", initial: 0, final: 1_250)
        let report = HistoryChecker.check(history)
        #expect(report.duplicateEffects == [.init(operation: "capture:o1", count: 2, actors: ["w1", "w3"])])
        #expect(report.imbalances == [.init(account: "merchant", expected: 750, final: 1_250)])
        #expect(report.lostOperations.isEmpty && report.outOfOrder.isEmpty)
    }

    @Test("a planted lost update: the balance holds less than the accepted operations moved")
    func lostUpdate() {
        var history = Self.clean
        history[history.firstIndex { $0.name == "merchant" }!] = .account("merchant", initial: 0, final: 250)
        let report = HistoryChecker.check(history)
        #expect(report.imbalances == [.init(account: "merchant", expected: 750, final: 250)])
        #expect(report.duplicateEffects.isEmpty && report.anomalyCount == 1)
        #expect(report.text().contains("merchant: expected 750, store holds 250 (-500)"))
    }

    @Test("an imbalance wider than Int64 is reported, not a crash: Int64.max held where -1 was expected")
    func imbalanceAtTheBounds() {
        let report = HistoryChecker.check([.account("a", initial: -1, final: .max), .account("b", initial: .max, final: .min)])
        #expect(report.imbalances.count == 2)
        let text = report.text()
        #expect(text.contains("a: expected -1, store holds 9223372036854775807 (+9223372036854775808)"), "\(text)")
        #expect(text.contains("b: expected 9223372036854775807, store holds -9223372036854775808 (-18446744073709551615)"), "\(text)")
    }

    @Test(
        "an operation's changes come from whichever line names them, in any order; sums past Int64 are an imbalance, never a wrapped match"
    )
    func changesInAnyOrder() {
        let named: HistoryEntry = .expect("pay:1", changes: ["m": 500])
        let bare: HistoryEntry = .request("pay:1", status: 201)
        for first in [bare, named] {
            let history: [HistoryEntry] = [first, first == bare ? named : bare, .effect("pay:1"), .account("m", initial: 0, final: 0)]
            let report = HistoryChecker.check(history)
            #expect(report.imbalances == [.init(account: "m", expected: 500, final: 0)], "\(report.text())")
        }
        let wrapping: [HistoryEntry] = [
            .expect("a", changes: ["m": .max]), .expect("b", changes: ["m": .max]), .expect("c", changes: ["m": 2]),
            .effect("a"), .effect("b"), .effect("c"), .account("m", initial: 0, final: 0),
        ]
        #expect(HistoryChecker.check(wrapping).imbalances.count == 1, "Int64.max + Int64.max + 2 wraps to 0")
        let past = HistoryChecker.check([.expect("a", changes: ["m": 1]), .effect("a"), .account("m", initial: .max, final: .max)])
        #expect(past.text().contains("m: expected 9223372036854775808, store holds 9223372036854775807 (-1)"), "\(past.text())")
    }

    @Test("names from the file cannot put escape sequences on the terminal: control characters are shown as \\u{…}")
    func terminalSafeText() {
        let report = HistoryChecker.check([.request("a\u{1B}[2J\u{9B}x", status: 201), .account("m\u{7}", initial: 0, final: 1)])
        let text = report.text()
        #expect(!text.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{9B}" || $0 == "\u{7}" }, "\(text.debugDescription)")
        #expect(text.contains("a\\u{1b}[2J\\u{9b}x"), "\(text.debugDescription)")
        #expect("tab\tand\nnewline".terminalSafe == "tab\tand\nnewline")
        #expect("tab\tand\r\nnewline".terminalSafeLine == "tab\tand\\u{d}\\u{a}newline")
    }

    @Test("a name from the file cannot forge a line of the report: its newlines are shown as \\u{a}")
    func forgedLines() {
        let forged = "x\nno anomalies\r\n"
        let report = HistoryChecker.check([.request(forged, status: 201), .effect(forged), .effect(forged)])
        let lines = report.text().split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "1 anomalies" && !lines.contains("no anomalies"), "\(report.text())")
        #expect(report.text().contains("x\\u{a}no anomalies\\u{d}\\u{a} took effect 2 times"), "\(report.text())")
    }

    @Test("a planted order violation: the email before its capture")
    func outOfOrder() {
        var history = Self.clean
        let email = history.firstIndex { $0.type == "effect" && $0.operation == "email:o1" }!
        history[email].position = 0  // recorded before capture:o1
        let report = HistoryChecker.check(history)
        #expect(report.outOfOrder == [.init(stream: "o1", operation: "email:o1", sequence: 2, appliedBefore: [])])
        #expect(report.anomalyCount == 1)
    }

    @Test(
        "every effect of a long stream out of order: each is reported with its count before it and only the last 16, so the report grows with the history, not its square"
    )
    func longStreamOutOfOrder() throws {
        let history = (1...2_000).map { HistoryEntry.effect("e\($0)", stream: "s", sequence: 3, position: Int64($0)) }
        let report = HistoryChecker.check(history)
        #expect(report.outOfOrder.count == 2_000)
        #expect(report.outOfOrder.map(\.appliedBeforeCount) == Array(0..<2_000))
        #expect(report.outOfOrder.allSatisfy { $0.appliedBefore == Array(repeating: 3, count: min($0.appliedBeforeCount, 16)) })
        #expect(report.text(examples: 2_000).contains("e2000 (sequence 3 of s) applied after […, 3, 3, 3"))
        #expect(try JSONEncoder().encode(report).count < 2_000 * 200)
    }

    @Test("a planted lost operation and an unexpected one")
    func lostAndUnexpected() {
        var history = Self.clean.filter { !($0.type == "effect" && $0.operation == "email:o2") }
        history.append(.effect("order:o9", actor: "serve"))
        let report = HistoryChecker.check(history)
        #expect(report.lostOperations == ["email:o2"])
        #expect(report.unexpectedEffects == ["order:o9"])
    }

    @Test("JSON lines round-trip; a bad line is refused with its number")
    func parsing() throws {
        let text = Self.clean.map { $0.jsonLine() }.joined(separator: "\n") + "\n\n"
        #expect(try HistoryChecker.parse(Data(text.utf8)) == Self.clean)
        for (bad, message) in [
            ("{\"type\":\"effect\"}", "line 2: a effect entry needs \"operation\""),
            ("not json", "line 2 is not a JSON object"),
            ("{\"type\":\"effect\",\"operation\":\"x\",\"stream\":\"s\"}", "both \"stream\" and \"sequence\""),
            ("{\"type\":\"account\",\"name\":\"m\",\"initial\":1}", "\"name\", \"initial\" and \"final\""),
            ("{\"type\":\"request\",\"operation\":\"x\",\"status\":\"ok\"}", "line 2: a field of this request entry has the wrong type"),
            ("{\"status\":200}", "line 2 is not a JSON object with a string \"type\""),
        ] {
            do {
                _ = try HistoryChecker.parse(Data((Self.clean[0].jsonLine() + "\n" + bad).utf8))
                Issue.record("\(bad) should be refused")
            } catch let error as UnraceError {
                #expect(error.code == .invalidArgument && error.message.contains(message), "\(error.message)")
            }
        }
    }

    @Test("a line of another type is ignored whatever its fields hold, as the History article says")
    func unknownTypesIgnored() throws {
        let text = [
            Self.clean[0].jsonLine(),
            #"{"type":"note","status":"retrying","actor":3,"changes":"none"}"#,
            #"{"type":"delivery","position":"first","extra":[1,2]}"#,
        ].joined(separator: "\n")
        let entries = try HistoryChecker.parse(Data(text.utf8))
        #expect(entries == [Self.clean[0], HistoryEntry(type: "note"), HistoryEntry(type: "delivery")])
    }

    @Test("unrace check: exit 0 for a clean history, 1 with the anomaly named, 2 for an unreadable one; --json")
    func command() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("check"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func write(_ name: String, _ entries: [HistoryEntry]) throws -> String {
            let path = folder.appendingPathComponent(name).path
            try Data(entries.map { $0.jsonLine() }.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let clean = try ChildProcess(["check", try write("clean.jsonl", Self.clean)])
        #expect(await clean.exitStatus() == 0)
        #expect(clean.printed.contains("no anomalies"))

        let duplicated = try write("dup.jsonl", Self.clean + [.effect("capture:o2", stream: "o2", sequence: 1, position: 9, actor: "w4")])
        let text = try ChildProcess(["check", duplicated])
        #expect(await text.exitStatus() == 1)
        #expect(text.printed.contains("duplicate effects (double execution): 1"))
        #expect(text.printed.contains("capture:o2 took effect 2 times (w2, w4)"))
        let json = try ChildProcess(["check", duplicated, "--json"])
        #expect(await json.exitStatus() == 1)
        let report = try JSONDecoder().decode(HistoryReport.self, from: Data(json.printed.utf8))
        #expect(report.duplicateEffects.map(\.operation) == ["capture:o2"])

        try Data("{\"type\":".utf8).write(to: folder.appendingPathComponent("bad.jsonl"))
        let bad = try ChildProcess(["check", folder.appendingPathComponent("bad.jsonl").path], captureErrors: true)
        #expect(await bad.exitStatus() == 2)
        #expect(bad.printed.contains("history line 1"))
        let missing = try ChildProcess(["check", folder.appendingPathComponent("missing.jsonl").path], captureErrors: true)
        #expect(await missing.exitStatus() == 2)

        // An --html file that cannot be written: the report is still printed, and an anomaly's 1
        // outranks the file's 2.
        let nowhere = folder.appendingPathComponent("no-such-folder/page.html").path
        let dirtyUnwritten = try ChildProcess(["check", duplicated, "--html", nowhere], captureErrors: true)
        #expect(await dirtyUnwritten.exitStatus() == 1)
        #expect(dirtyUnwritten.printed.contains("capture:o2 took effect 2 times") && dirtyUnwritten.printed.contains("cannot write"))
        let cleanUnwritten = try ChildProcess(["check", try write("clean2.jsonl", Self.clean), "--html", nowhere], captureErrors: true)
        #expect(await cleanUnwritten.exitStatus() == 2)
        #expect(cleanUnwritten.printed.contains("no anomalies") && cleanUnwritten.printed.contains("cannot write"))
        // Accounts at Int64's ends: reported, not a crash.
        let bounds = try ChildProcess(["check", try write("bounds.jsonl", [.account("a", initial: -1, final: .max)])])
        #expect(await bounds.exitStatus() == 1)
        #expect(bounds.printed.contains("a: expected -1, store holds 9223372036854775807 (+9223372036854775808)"), "\(bounds.printed)")
    }
}
