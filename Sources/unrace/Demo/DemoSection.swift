/// One row of the demo: a case, naive handler against guarded, with counts by name. Every count
/// set has `anomalies`; the demo fails if a guarded row's is not 0.
struct DemoRow: Sendable {
    var race: String
    var caseName: String
    var variant: String
    var operations: Int
    var settings: [String: Int]
    var naive: [String: Int]
    var guarded: [String: Int]
    /// The number shown in the table's third column.
    var shown: Int
}

/// One race's part of the demo.
struct DemoSection: Sendable {
    var title: String
    var explanation: [String]
    /// Headings of the variant column, the shown number and the anomaly columns.
    var columns: (variant: String, shown: String, anomalies: String)
    var rows: [DemoRow]
}

extension DemoRow {
    var guardedClean: Bool { guarded["anomalies"] == 0 && (guarded["missing"] ?? 0) == 0 }
}
