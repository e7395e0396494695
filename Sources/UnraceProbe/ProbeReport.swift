public import Foundation
import UnraceCore
public import UnraceSimulation

/// One of the probes `unrace probe` runs.
public enum ProbeKind: String, Sendable, CaseIterable, Codable {
    /// N requests with one key released at one instant: identical answers, at most one resource.
    case duplicates
    /// The same key again after an answer, and after a connection cut before and after the
    /// answer's head: replayed, not executed again.
    case retry
    /// A used key with another body: refused (422 per the IETF draft, or another 4xx).
    case keyReuse = "key-reuse"
    /// No key at all: what the service does (refusing is recommended).
    case missingKey = "missing-key"
    /// N concurrent writes of one resource with the same `If-Match`, then without one.
    case lostUpdate = "lost-update"

    /// What the probe checks, for the table.
    public var title: String {
        switch self {
        case .duplicates: "concurrent duplicates"
        case .retry: "retry after success and after a cut connection"
        case .keyReuse: "key reuse with another body"
        case .missingKey: "missing key"
        case .lostUpdate: "lost update"
        }
    }
}

/// What a probe concluded.
public enum ProbeVerdict: String, Sendable, Codable, Comparable {
    /// Nothing wrong seen.
    case clean
    /// Not an anomaly, but worth knowing (a request without a key accepted, a retry refused
    /// instead of replayed).
    case notice
    /// The probe could not run (a missing option, a body it cannot vary) or could not conclude.
    case skipped
    /// A race or a broken contract seen, with its evidence: the prober exits 1.
    case anomaly

    private var rank: Int { [.clean: 0, .skipped: 1, .notice: 2, .anomaly: 3][self]! }
    /// Orders verdicts by weight: clean, skipped, notice, anomaly.
    public static func < (a: ProbeVerdict, b: ProbeVerdict) -> Bool { a.rank < b.rank }
}

/// One request the prober sent and what came back.
public struct ProbeExchange: Sendable, Codable, Hashable {
    /// The lane it is drawn in, such as `request-7`.
    public var actor: String
    /// Method and URL path, such as `POST /orders`.
    public var request: String
    /// The key sent, shortened to its label (`key-1`), or `none`.
    public var key: String
    /// The answer's status; `nil` when none came (see ``error``) or the probe cut the connection first.
    public var status: Int?
    /// A transport error or the probe's own cut, when there was no complete answer.
    public var error: String?
    /// The answer's `Location`.
    public var location: String?
    /// The answer's `ETag`.
    public var etag: String?
    /// The created resource a 2xx answer names: its `Location` resolved against the target (path
    /// and query, with the origin when it is not the target's), else the identity field of its
    /// JSON body.
    public var identity: String?
    /// The answer's body bytes, as text (at most 512 bytes kept here).
    public var body: String
    /// The SHA-256 (hex) of the whole body — of its canonical JSON when it is JSON; empty without
    /// an answer (and in reports written before it existed). Answers are compared by it.
    public var bodySHA256: String
    /// Seconds from the probe run's start to when the request was sent.
    public var started: Double
    /// Seconds from the probe run's start to when its answer ended (or the request failed).
    public var ended: Double
}

extension ProbeExchange {
    private enum CodingKeys: String, CodingKey {
        case actor, request, key, status, error, location, etag, identity, body, bodySHA256, started, ended
    }

    /// Decodes an exchange; a report written before ``bodySHA256`` existed decodes with it empty.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        actor = try container.decode(String.self, forKey: .actor)
        request = try container.decode(String.self, forKey: .request)
        key = try container.decode(String.self, forKey: .key)
        status = try container.decodeIfPresent(Int.self, forKey: .status)
        error = try container.decodeIfPresent(String.self, forKey: .error)
        location = try container.decodeIfPresent(String.self, forKey: .location)
        etag = try container.decodeIfPresent(String.self, forKey: .etag)
        identity = try container.decodeIfPresent(String.self, forKey: .identity)
        body = try container.decode(String.self, forKey: .body)
        bodySHA256 = try container.decodeIfPresent(String.self, forKey: .bodySHA256) ?? ""
        started = try container.decode(Double.self, forKey: .started)
        ended = try container.decode(Double.self, forKey: .ended)
    }
}

/// A probe's conclusion and the requests behind it.
public struct ProbeResult: Sendable, Codable {
    /// Which probe.
    public var probe: ProbeKind
    /// Its verdict.
    public var verdict: ProbeVerdict
    /// One line for the table.
    public var summary: String
    /// What the verdict rests on: distinct ids, the count before and after, statuses seen.
    public var evidence: [String]
    /// Every request the probe sent, in the order they were sent.
    public var exchanges: [ProbeExchange]
}

/// Everything a probe run found.
public struct ProbeReport: Sendable, Codable {
    /// `METHOD URL` of the target.
    public var target: String
    /// One result per probe run, in the order they ran.
    public var results: [ProbeResult]

    /// Whether any probe saw an anomaly.
    public var hasAnomaly: Bool { results.contains { $0.verdict == .anomaly } }

    /// The report as a table: one block per probe, its verdict, summary and evidence.
    public func table() -> String {
        // The server chose some of this text (bodies, ids, field values): each stays in its own
        // line, with no escape sequences.
        var lines = ["unrace probe \(target.terminalSafeLine)", ""]
        let width = (results.map { $0.probe.rawValue.count }.max() ?? 10) + 2
        lines.append("probe".padding(toLength: width, withPad: " ", startingAt: 0) + "verdict   requests  summary")
        for result in results {
            lines.append(
                result.probe.rawValue.padding(toLength: width, withPad: " ", startingAt: 0)
                    + result.verdict.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + String(result.exchanges.count).padding(toLength: 10, withPad: " ", startingAt: 0) + result.summary.terminalSafeLine
            )
            for item in result.evidence { lines.append(String(repeating: " ", count: width + 20) + "· " + item.terminalSafeLine) }
        }
        let anomalies = results.filter { $0.verdict == .anomaly }.count
        lines.append("")
        if anomalies > 0 {
            lines.append("\(anomalies) \(anomalies == 1 ? "probe" : "probes") saw an anomaly")
        } else if results.allSatisfy({ $0.verdict == .skipped }) {
            lines.append("no anomalies seen, but every probe was skipped: nothing was proved")
        } else {
            lines.append("no anomalies")
        }
        return lines.joined(separator: "\n")
    }

    /// The report as JSON (sorted keys, stable field names).
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }

    /// The requests as a picture: a panel per probe, a lane per request, anomalies highlighted
    /// (drawn by the simulator's ``Timeline``).
    public func timeline() -> Timeline {
        Timeline(
            title: "unrace probe · \(target)",
            panels: results.map { result in
                var lines = ["\(result.probe.title): \(result.verdict.rawValue) — \(result.summary)"]
                let marks = result.exchanges.flatMap { exchange -> [(Double, String)] in
                    let lane = exchange.actor.replacingOccurrences(of: " ", with: "_")
                    let sent = (exchange.started, "t=\(Self.seconds(exchange.started))  \(lane)  \(exchange.request) key=\(exchange.key)")
                    var answer = exchange.status.map { "→ \($0)" } ?? "✗ \(exchange.error ?? "no answer")"
                    if let identity = exchange.identity { answer += " id=\(identity)" }
                    return [sent, (exchange.ended, "t=\(Self.seconds(exchange.ended))  \(lane)  \(answer)")]
                }
                lines += marks.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element.1)
                let violations =
                    result.verdict == .anomaly
                    ? [Violation(result.probe.rawValue, result.summary)] + result.evidence.map { Violation("evidence", $0) } : []
                return Timeline.Panel(title: result.probe.title, lines: lines, violations: violations)
            }
        )
    }

    private static func seconds(_ value: Double) -> String { String(format: "%.4fs", value) }
}
