extension Timeline.Panel {
    /// A panel of a real history (what `unrace check` reads): each effect a mark in its actor's
    /// lane at its recorded position, each request a mark in the `client` lane, and the checker's
    /// findings as the violations. Effects of an operation that took effect more than once, and
    /// applications out of order, are marked `✗`.
    ///
    /// The trace lines are built here from the entries, and drawn like a simulator's trace.
    public init(history entries: [HistoryEntry], report: HistoryReport, title: String) {
        let duplicated = Set(report.duplicateEffects.map(\.operation))
        let disordered = Set(report.outOfOrder.map { "\($0.stream)#\($0.sequence)" })
        // Effects are drawn in the order of their recorded positions, as the checker orders them:
        // merged per-worker logs are not in position order.
        var marks: [(time: Int64, line: Int, isEffect: Bool, text: String)] = []
        var index: Int64 = 0
        for entry in entries {
            index += 1
            switch entry.type {
            case "request":
                let status = entry.status.map { " → \($0)" } ?? ""
                marks.append((index, marks.count, false, "t=\(index)  client  request \(entry.operation ?? "?")\(status)"))
            case "effect":
                let operation = entry.operation ?? "?"
                var text = "effect \(operation)"
                var place = ""
                if let stream = entry.stream, let sequence = entry.sequence {
                    place = "\(stream)#\(sequence)"
                    text += " \(place)"
                }
                if duplicated.contains(operation) { text += " ✗ again" }
                if disordered.contains(place) { text += " ✗ out of order" }
                let time = entry.position ?? index
                marks.append((time, marks.count, true, "t=\(time)  \(Self.lane(entry.actor))  \(text)"))
            default:
                continue
            }
        }
        // Effects take the effects' places in position order; requests keep their lines (their
        // times are line numbers, another scale than the store's positions).
        let effectSlots = marks.indices.filter { marks[$0].isEffect }
        let effectsInOrder = effectSlots.map { marks[$0] }.sorted { ($0.time, $0.line) < ($1.time, $1.line) }
        for (slot, mark) in zip(effectSlots, effectsInOrder) { marks[slot] = mark }
        let lines = ["\(entries.count) entries, \(report.expectedOperations) operations expected"] + marks.map(\.text)
        var violations: [Violation] = []
        if !report.duplicateEffects.isEmpty {
            violations.append(Violation("effects-at-most-once", "\(report.duplicateEffects.count) operations took effect more than once"))
        }
        if !report.lostOperations.isEmpty {
            violations.append(
                Violation("accepted-operations-happen", "\(report.lostOperations.count) accepted operations never took effect")
            )
        }
        if !report.unexpectedEffects.isEmpty {
            violations.append(Violation("no-unasked-effects", "\(report.unexpectedEffects.count) effects nobody asked for"))
        }
        if !report.imbalances.isEmpty {
            violations.append(Violation("quantities-add-up", "\(report.imbalances.count) accounts end where their operations do not lead"))
        }
        if !report.outOfOrder.isEmpty {
            violations.append(Violation("per-stream-order", "\(report.outOfOrder.count) applications out of their stream's order"))
        }
        self.init(title: title, lines: lines, violations: violations)
    }

    /// An actor name as one lane label: no spaces (they separate a trace line's fields).
    private static func lane(_ actor: String?) -> String {
        guard let actor, !actor.isEmpty else { return "system" }
        return String(actor.map { $0 == " " ? "_" : $0 })
    }
}
