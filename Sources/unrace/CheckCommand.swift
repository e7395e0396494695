import ArgumentParser
import Foundation
import UnraceSimulation

/// `unrace check`: reads a history (JSON lines) and reports the seed's anomalies.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a history for duplicate effects, lost operations, lost updates and out-of-order applications.",
        discussion: """
            HISTORY is JSON lines: "request" (what a client asked and the status it finally got), \
            "expect" (work an accepted request implies), "effect" (what the system did, as the store \
            recorded it) and "account" (a quantity's start and final value). Other types are ignored. \
            Exits 0 for a clean history, 1 when it finds an anomaly, 2 for an unreadable history or (when \
            the history is clean) an --html file that cannot be written; the report is printed either way. \
            See the History article for the format.
            """
    )

    @Argument(help: "The history file (JSON lines); - reads standard input.") var history: String
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Offending entries shown per class in the text report (0 to 1000).") var examples = 5
    @Option(help: "Also draw the history as a self-contained HTML timeline in this file.") var html: String?

    func validate() throws {
        guard (0...1_000).contains(examples) else { throw ValidationError("--examples must be between 0 and 1000") }
    }

    func run() async throws {
        let limit = HistoryChecker.historyByteCountMaximum
        guard let data = readBounded(history, limit: limit, standardInput: true) else {
            FileHandle.standardError.write(Data("error: cannot read \(history)\n".utf8))
            throw ExitCode(2)
        }
        guard data.count <= limit else {
            FileHandle.standardError.write(
                Data("error: \(history) is larger than \(limit) bytes (HistoryChecker.historyByteCountMaximum)\n".utf8)
            )
            throw ExitCode(2)
        }
        let entries: [HistoryEntry]
        do {
            entries = try HistoryChecker.parse(data)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let report = HistoryChecker.check(entries)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text(examples: examples))
        }
        var written = true
        if let html {
            let title = "unrace check · \(history == "-" ? "standard input" : URL(fileURLWithPath: history).lastPathComponent)"
            let page = Timeline(title: title, panels: [Timeline.Panel(history: entries, report: report, title: "history")]).html()
            written = writeOutputFile(page, to: html)
        }
        // An anomaly outranks a file that could not be written: a script checking for 1 sees it.
        if !report.isClean { throw ExitCode(1) }
        if !written { throw ExitCode(2) }
    }
}
