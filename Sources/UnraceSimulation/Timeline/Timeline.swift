/// A race as a picture: one self-contained HTML file (inline SVG and CSS, no script, no network)
/// with a lane per actor, a mark per step, deliveries and redeliveries as arrows from the broker,
/// store steps as arrows to the store, leases as bars labelled with their fencing token, and the
/// broken invariant highlighted with its explanation.
///
/// The picture is drawn from the trace lines the text output prints (`t=0.005s   worker-1   …`),
/// so the two never disagree. The same panels always give byte-identical HTML.
///
/// Large histories stay readable: runs of idle steps (`idle`, `→ nothing ready`) longer than
/// ``idleRunMaximum`` collapse into one mark, and past ``marksMaximum`` marks per panel the middle
/// is left out — the picture says how many steps each gap stands for.
public struct Timeline: Sendable {
    /// The most marks one panel draws: 2,000 (the first and last 1,000 steps).
    public static let marksMaximum = 2_000
    /// Idle steps in a row drawn one by one; longer runs collapse into one mark: 3.
    public static let idleRunMaximum = 3

    /// One trace drawn as lanes: a handler's run of a seed.
    public struct Panel: Sendable {
        /// What the panel shows, such as `naive handler`.
        public var title: String
        /// The trace lines, as the text output prints them: settings first, then steps.
        public var lines: [String]
        /// What the run broke; empty for a clean run.
        public var violations: [Violation]

        /// A panel of trace lines.
        public init(title: String, lines: [String], violations: [Violation]) {
            self.title = title
            self.lines = lines
            self.violations = violations
        }

        /// A panel of a traced run (run it with ``SimulationOptions/tracing`` on).
        public init(_ run: SimulationRun, title: String? = nil) {
            self.init(title: title ?? "\(run.handler.rawValue) handler", lines: run.trace, violations: run.violations)
        }
    }

    /// The page's heading, such as `wallet · seed 1`.
    public var title: String
    /// The panels, drawn one under the other (naive above guarded).
    public var panels: [Panel]

    /// A timeline of panels.
    public init(title: String, panels: [Panel]) {
        self.title = title
        self.panels = panels
    }

    /// The whole page.
    public func html() -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>\(Self.css)</style></head>
            <body><h1>\(escape(title))</h1>

            """
        for (index, panel) in panels.enumerated() { out += render(panel, index: index) }
        out += "</body></html>\n"
        return out
    }

    // MARK: Steps

    /// One parsed trace line.
    struct Step {
        var time: String
        var actor: String
        var text: String
        /// For a collapsed or left-out mark: how many steps it stands for.
        var count = 1
        var kind: Kind = .step

        enum Kind: String {
            case step, collapsed
            case leftOut = "left-out"
        }

        /// Parses `t=0.005s   worker-1   text`; `nil` for a settings line.
        init?(_ line: Substring) {
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("t=") else { return nil }
            let parts = trimmed.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard parts.count >= 2 else { return nil }
            time = String(parts[0].dropFirst(2))
            actor = String(parts[1])
            text = parts.count > 2 ? String(parts[2].drop { $0 == " " }) : ""
        }

        init(time: String, actor: String, text: String, count: Int, kind: Kind) {
            (self.time, self.actor, self.text, self.count, self.kind) = (time, actor, text, count, kind)
        }

        var isIdle: Bool { text == "idle" || text.hasSuffix("→ nothing ready") }
        var isStore: Bool { text.hasPrefix("store.") }
        var isFault: Bool { text.contains("✗") }
        /// The attempt of a delivery (`… (p0@0, attempt 2)`), if this step received one.
        var attempt: Int? {
            guard text.contains("→"), let range = text.range(of: "attempt ", options: .backwards) else { return nil }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }
        /// The fencing token of a lease this step acquired (`→ acquired, token 2`), if any.
        var acquiredToken: String? {
            guard let range = text.range(of: "acquired, token ") else { return nil }
            return String(text[range.upperBound...].prefix { $0.isNumber })
        }
        /// Whether this step ends its actor's lease: a completion, a failure, a crash, an ack.
        var endsLease: Bool {
            text.hasPrefix("store.complete") || text.hasPrefix("store.fail") || text.contains("crash") || text.hasPrefix("ack ")
        }
    }

    /// Collapses idle runs and caps the marks; returns the marks and the settings lines.
    static func marks(_ lines: [String]) -> (settings: [String], steps: [Step], total: Int) {
        var settings: [String] = []
        var steps: [Step] = []
        var idle: [Step] = []
        var total = 0
        func flushIdle() {
            if idle.count > idleRunMaximum {
                steps.append(Step(time: idle[0].time, actor: "", text: "\(idle.count) idle steps", count: idle.count, kind: .collapsed))
            } else {
                steps += idle
            }
            idle = []
        }
        for line in lines {
            guard let step = Step(line[...]) else {
                if steps.isEmpty && idle.isEmpty { settings.append(line.trimmingLeadingSpaces) }
                continue
            }
            total += 1
            if step.isIdle {
                idle.append(step)
            } else {
                flushIdle()
                steps.append(step)
            }
        }
        flushIdle()
        if steps.count > marksMaximum {
            let half = marksMaximum / 2
            let middle = steps[half..<(steps.count - half)]
            let hidden = middle.reduce(0) { $0 + $1.count }
            let gap = Step(time: middle.first!.time, actor: "", text: "\(hidden) steps left out", count: hidden, kind: .leftOut)
            steps = Array(steps[..<half]) + [gap] + Array(steps[(steps.count - half)...])
        }
        return (settings, steps, total)
    }

    // MARK: Drawing

    static let laneHeight = 36
    static let stepWidth = 30
    static let labelWidth = 150
    static let top = 34

    private func render(_ panel: Panel, index: Int) -> String {
        let (settings, steps, total) = Self.marks(panel.lines)
        // Lanes: the broker when something was delivered, the actors in order of appearance, the store.
        var actors: [String] = []
        var seen = Set<String>()
        for step in steps where step.kind == .step && seen.insert(step.actor).inserted { actors.append(step.actor) }
        let hasBroker = steps.contains { $0.attempt != nil }
        let hasStore = steps.contains { $0.isStore }
        let lanes = (hasBroker ? ["broker"] : []) + actors + (hasStore ? ["store"] : [])
        var laneOf: [String: Int] = [:]
        for (lane, name) in lanes.enumerated() { laneOf[name] = lane }
        let width = Self.labelWidth + max(1, steps.count) * Self.stepWidth + 20
        let height = Self.top + lanes.count * Self.laneHeight + 10
        func x(_ i: Int) -> Int { Self.labelWidth + i * Self.stepWidth + Self.stepWidth / 2 }
        func y(_ lane: Int) -> Int { Self.top + lane * Self.laneHeight + Self.laneHeight / 2 }

        let broken = !panel.violations.isEmpty
        var out = "<section class=\"panel \(broken ? "broken" : "clean")\" id=\"panel-\(index)\">\n"
        out += "<h2>\(escape(panel.title))</h2>\n"
        if !settings.isEmpty { out += "<p class=\"settings\">\(settings.map(escape).joined(separator: "<br>"))</p>\n" }
        for violation in panel.violations {
            out +=
                "<p class=\"violation\" data-invariant=\"\(escape(violation.invariant))\">✗ \(escape(violation.invariant)): \(escape(violation.detail))</p>\n"
        }
        if !broken { out += "<p class=\"verdict\">no invariant broken</p>\n" }
        let shown = steps.reduce(0) { $0 + ($1.kind == .step ? 1 : 0) }
        if shown < total {
            out += "<p class=\"omitted\">\(total) steps; \(shown) drawn one by one, the rest collapsed or left out as marked.</p>\n"
        }
        out +=
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\">\n"
        out +=
            "<defs><marker id=\"arrow-\(index)\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\n"
        for (lane, name) in lanes.enumerated() {
            out +=
                "<g class=\"lane\" data-lane=\"\(escape(name))\"><line x1=\"\(Self.labelWidth)\" y1=\"\(y(lane))\" x2=\"\(width - 10)\" y2=\"\(y(lane))\"/>"
            out += "<text x=\"8\" y=\"\(y(lane) + 4)\">\(escape(name))</text></g>\n"
        }
        // Time labels where virtual time moves on, far enough apart to read.
        var lastTime = ""
        var lastLabel = -1_000
        for (i, step) in steps.enumerated() where step.time != lastTime {
            lastTime = step.time
            guard x(i) - lastLabel >= 64 else { continue }
            lastLabel = x(i)
            out += "<text class=\"time\" x=\"\(x(i))\" y=\"14\">\(escape(step.time))</text>\n"
        }
        // Leases: from an acquiring step to the actor's next step that ends it.
        for (i, step) in steps.enumerated() {
            guard let token = step.acquiredToken, let lane = laneOf[step.actor] else { continue }
            // A lease ends at its holder's next ending step, or where the drawing leaves steps out.
            let end = steps[(i + 1)...].firstIndex { ($0.actor == step.actor && $0.endsLease) || $0.kind == .leftOut } ?? steps.count - 1
            out +=
                "<g class=\"lease\" data-token=\"\(escape(token))\"><rect x=\"\(x(i))\" y=\"\(y(lane) - 14)\" width=\"\(max(6, x(end) - x(i)))\" height=\"5\"/>"
            out += "<text x=\"\(x(i) + 2)\" y=\"\(y(lane) - 17)\">token \(escape(token))</text></g>\n"
        }
        for (i, step) in steps.enumerated() {
            let title = escape(step.kind == .step ? "t=\(step.time) \(step.actor) \(step.text)" : step.text)
            guard step.kind == .step, let lane = laneOf[step.actor] else {
                out +=
                    "<g class=\"step \(step.kind.rawValue)\" data-count=\"\(step.count)\"><rect x=\"\(x(i) - 6)\" y=\"\(Self.top)\" width=\"12\" height=\"\(lanes.count * Self.laneHeight)\"/><title>\(title)</title></g>\n"
                continue
            }
            var classes = ["step"]
            if let attempt = step.attempt {
                classes.append(attempt > 1 ? "redelivery" : "delivery")
                if let broker = laneOf["broker"] {
                    out +=
                        "<line class=\"arrow \(attempt > 1 ? "redelivery" : "delivery")\" x1=\"\(x(i))\" y1=\"\(y(broker))\" x2=\"\(x(i))\" y2=\"\(y(lane) - 8)\" marker-end=\"url(#arrow-\(index))\"/>\n"
                }
            }
            if step.isStore, let store = laneOf["store"] {
                classes.append("store-step")
                out +=
                    "<line class=\"arrow store\" x1=\"\(x(i))\" y1=\"\(y(lane) + 8)\" x2=\"\(x(i))\" y2=\"\(y(store))\" marker-end=\"url(#arrow-\(index))\"/>\n"
            }
            if step.isFault { classes.append("fault") }
            out +=
                "<g class=\"\(classes.joined(separator: " "))\" data-actor=\"\(escape(step.actor))\"><circle cx=\"\(x(i))\" cy=\"\(y(lane))\" r=\"6\"/>"
            out += "<text class=\"n\" x=\"\(x(i))\" y=\"\(y(lane) + 18)\">\(i + 1)</text><title>\(title)</title></g>\n"
        }
        if broken, let last = steps.indices.last {
            out +=
                "<g class=\"violation\"><rect x=\"\(Self.labelWidth - 4)\" y=\"\(Self.top - 4)\" width=\"\(x(last) - Self.labelWidth + 16)\" height=\"\(lanes.count * Self.laneHeight + 8)\"/>"
            out += "<title>\(escape(panel.violations.map { "\($0.invariant): \($0.detail)" }.joined(separator: "; ")))</title></g>\n"
        }
        // The marks, numbered as drawn: what each one is, in words.
        out += "</svg>\n<ol class=\"steps\">"
        for (i, step) in steps.enumerated() {
            let text = step.kind == .step ? "t=\(step.time) \(step.actor) \(step.text)" : "… \(step.text)"
            out += "<li value=\"\(i + 1)\"\(step.isFault ? " class=\"fault\"" : "")>\(escape(text))</li>"
        }
        out += "</ol>\n<details><summary>the text trace</summary><pre class=\"trace\">"
        out += Self.textTrace(panel.lines).map(escape).joined(separator: "\n")
        out += "</pre></details>\n</section>\n"
        return out
    }

    /// The text trace as embedded: at most ``marksMaximum`` lines (the first and last half), so a
    /// long history's file stays small; a line says how many were left out.
    static func textTrace(_ lines: [String]) -> [String] {
        guard lines.count > marksMaximum else { return lines }
        let half = marksMaximum / 2
        return Array(lines[..<half]) + ["… \(lines.count - marksMaximum) lines left out …"] + Array(lines[(lines.count - half)...])
    }

    static let css = """
        body{font:14px/1.4 -apple-system,system-ui,sans-serif;margin:24px;color:#222}
        h1{font-size:20px}h2{font-size:16px;margin:24px 0 4px}
        .settings,.omitted{color:#555;font:12px ui-monospace,monospace}
        .violation{color:#b00020;font-weight:600}.verdict{color:#1b7a3a;font-weight:600}
        svg{display:block;overflow:visible}
        .lane line{stroke:#ccc;stroke-width:1}.lane text{font:12px ui-monospace,monospace;fill:#333}
        .time{font:10px ui-monospace,monospace;fill:#888;text-anchor:middle}
        .step circle{fill:#4a6fa5}.step.store-step circle{fill:#7a5aa5}
        .step.delivery circle{fill:#2e8b57}.step.redelivery circle{fill:#e69500}
        .step.fault circle{fill:#b00020}
        .step.collapsed rect,.step.left-out rect{fill:#eee;stroke:#bbb}
        .arrow{stroke:#999;stroke-width:1.2}.arrow.redelivery{stroke:#e69500;stroke-width:2}
        marker path{fill:#999}
        .lease rect{fill:#4a6fa5;opacity:.35}.lease text{font:10px ui-monospace,monospace;fill:#4a6fa5}
        g.violation rect{fill:none;stroke:#b00020;stroke-width:2;stroke-dasharray:6 3}
        pre.trace{font:12px ui-monospace,monospace;background:#f6f6f6;padding:8px;overflow:auto}
        .n{font:9px ui-monospace,monospace;fill:#777;text-anchor:middle}
        ol.steps{font:12px ui-monospace,monospace;columns:2 44em;color:#333}ol.steps li.fault{color:#b00020}
        """
}

/// Escapes text for HTML content and quoted attributes, scalar by scalar (a quote followed by a
/// combining mark is one `Character` but still a quote to the HTML parser). NUL and other
/// control characters but tab and newline become U+FFFD.
func escape(_ text: String) -> String {
    var out = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        switch scalar {
        case "&": out.append(contentsOf: "&amp;".unicodeScalars)
        case "<": out.append(contentsOf: "&lt;".unicodeScalars)
        case ">": out.append(contentsOf: "&gt;".unicodeScalars)
        case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
        case "'": out.append(contentsOf: "&#39;".unicodeScalars)
        case "\t", "\n": out.append(scalar)
        default:
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                out.append("\u{FFFD}")
            } else {
                out.append(scalar)
            }
        }
    }
    return String(out)
}

extension String {
    fileprivate var trimmingLeadingSpaces: String { String(drop { $0 == " " }) }
}

extension Timeline {
    /// The naive and the guarded handler of `scenario`, drawn for the first seed from `seed` (at
    /// most `searchLimit` seeds on) whose naive run breaks an invariant: the naive run shrunk, the
    /// guarded run of the same seed as it ran. Without such a seed, both runs of `seed` as they ran.
    public static func race(
        _ scenario: Scenario,
        from seed: UInt64,
        searchLimit: Int = 200,
        options: SimulationOptions = .init(),
        shrinkBudget: Int = 2_000
    ) async -> [Panel] {
        var traced = options
        traced.tracing = true
        var chosen = seed
        var failure: SimulationRun?
        for offset in 0..<UInt64(max(1, searchLimit)) {
            let run = await Simulator.run(scenario, .naive, seed: seed &+ offset, options: options)
            if run.failed {
                (chosen, failure) = (seed &+ offset, run)
                break
            }
        }
        let name = scenario.name
        let naive: Panel
        if let failure {
            let shrunk = await Simulator.shrink(failure, scenario: scenario, options: traced, budget: shrinkBudget)
            naive = Panel(shrunk.shrunk, title: "\(name) · naive handler · seed \(chosen), shrunk to \(shrunk.shrunk.steps) steps")
        } else {
            naive = Panel(
                await Simulator.run(scenario, .naive, seed: chosen, options: traced),
                title: "\(name) · naive handler · seed \(chosen)"
            )
        }
        let guarded = Panel(
            await Simulator.run(scenario, .guarded, seed: chosen, options: traced),
            title: "\(name) · guarded handler · seed \(chosen)"
        )
        return [naive, guarded]
    }
}
