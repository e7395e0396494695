import Foundation

/// Renders demo results for people (a table) and for scripts (JSON).
enum DemoReport {
    static func table(_ result: DemoResult, elapsed: Duration) -> String {
        var lines: [String] = []
        lines.append("unrace demo: the double-execution race on \(result.backend)")
        lines.append("An at-least-once queue redelivers any message not acknowledged within its visibility timeout;")
        lines.append("one handler in five outlasts it. The naive handler checks \"already done?\", works, then writes;")
        lines.append("the guarded handler writes its effect through Operations.perform.")
        lines.append("")
        let header = [
            pad("case", 22), pad("queue", 32), lpad("ops", 5), lpad("deliveries", 11),
            lpad("duplicate effects: naive", 25), lpad("guarded", 8),
        ].joined(separator: " ")
        lines.append(header)
        lines.append(String(repeating: "-", count: header.count))
        for row in result.rows {
            lines.append([
                pad(row.caseName, 22), pad(row.variant, 32), lpad("\(row.operations)", 5),
                lpad("\(row.naive.deliveries)", 11), lpad("\(row.naive.anomalies)", 25), lpad("\(row.guarded.anomalies)", 8),
            ].joined(separator: " "))
        }
        lines.append("")
        let clean = result.rows.allSatisfy { $0.guarded.anomalies == 0 && $0.guarded.missing == 0 }
        let naiveAlwaysBroken = result.rows.allSatisfy { $0.naive.anomalies > 0 }
        lines.append(clean ? "Guarded: no duplicate effect in any run; every operation's effect exists exactly once."
                           : "GUARDED RUN SHOWED AN ANOMALY: this is a bug in Unrace.")
        if naiveAlwaysBroken {
            lines.append("The mistaken fixes lower the naive duplicates but do not remove them: the race is still there.")
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        lines.append(String(format: "Finished in %.1f s. Try --json, --database postgres://…, or --seed N.", seconds))
        return lines.joined(separator: "\n")
    }

    static func json(rows: [DemoRow]) -> String {
        struct Row: Encodable {
            var race: String
            var `case`: String
            var variant: String
            var operations: Int
            var consumers: Int
            var visibilityTimeoutMs: Int64
            var naive: HandlerRun
            var guarded: HandlerRun
        }
        struct Document: Encodable { var rows: [Row] }
        let document = Document(rows: rows.map {
            Row(
                race: $0.race, case: $0.caseName, variant: $0.variant, operations: $0.operations, consumers: $0.consumers,
                visibilityTimeoutMs: $0.visibilityTimeout.wholeMilliseconds, naive: $0.naive, guarded: $0.guarded
            )
        })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(document)) ?? Data("{}".utf8), as: UTF8.self)
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    private static func lpad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
