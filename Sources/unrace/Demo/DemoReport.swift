import Foundation

/// Renders demo results for people (tables) and for scripts (JSON).
enum DemoReport {
    static func table(_ sections: [DemoSection], backend: String, elapsed: Duration) -> String {
        var lines: [String] = ["unrace demo on \(backend): each race, a naive handler against Unrace's guard", ""]
        for section in sections {
            lines.append("\(section.title)")
            lines += section.explanation.map { "  " + $0 }
            lines.append("")
            let header = [
                pad("case", 22), pad(section.columns.variant, 32), lpad("ops", 5), lpad(section.columns.shown, 16),
                lpad("\(section.columns.anomalies): naive", 25), lpad("guarded", 8),
            ].joined(separator: " ")
            lines.append(header)
            lines.append(String(repeating: "-", count: header.count))
            for row in section.rows {
                lines.append(
                    [
                        pad(row.caseName, 22), pad(row.variant, 32), lpad("\(row.operations)", 5), lpad("\(row.shown)", 16),
                        lpad("\(row.naive["anomalies"] ?? 0)", 25), lpad("\(row.guarded["anomalies"] ?? 0)", 8),
                    ].joined(separator: " ")
                )
            }
            lines.append("")
        }
        let rows = sections.flatMap(\.rows)
        lines.append(
            rows.allSatisfy(\.guardedClean)
                ? "Guarded: no anomaly in any run."
                : "GUARDED RUN SHOWED AN ANOMALY: this is a bug in Unrace."
        )
        if rows.allSatisfy({ ($0.naive["anomalies"] ?? 0) > 0 }) {
            lines.append("Naive: an anomaly in every row, the mistaken fixes included: they make the race rarer, not gone.")
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        lines.append(String(format: "Finished in %.1f s. Try --json, --database postgres://…, or --seed N.", seconds))
        lines.append("Replay one race step by step from a seed: unrace simulate --scenario wallet --handler naive --seed 3")
        return lines.joined(separator: "\n")
    }

    static func json(_ sections: [DemoSection]) -> String {
        struct Row: Encodable {
            var race: String
            var `case`: String
            var variant: String
            var operations: Int
            var settings: [String: Int]
            var naive: [String: Int]
            var guarded: [String: Int]
        }
        struct Document: Encodable { var rows: [Row] }
        let document = Document(
            rows: sections.flatMap(\.rows).map {
                Row(
                    race: $0.race,
                    case: $0.caseName,
                    variant: $0.variant,
                    operations: $0.operations,
                    settings: $0.settings,
                    naive: $0.naive,
                    guarded: $0.guarded
                )
            }
        )
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
