import Foundation
import Synchronization
import UnraceSimulation

/// One run of the probes: the client, and what one request moves the count by.
final class ProbeRun: Sendable {
    let client: ProbeClient
    let target: ProbeTarget
    let concurrency: Int
    /// Statuses that mean "not yet, retry later", not an outcome: 409, 425, 429, 503.
    static let deferredStatuses: Set<Int> = [409, 425, 429, 503]

    /// How much one request with a fresh key moves ``ProbeTarget/countURL``, measured once.
    private let unit = Mutex<Int64??>(nil)

    init(client: ProbeClient, target: ProbeTarget, concurrency: Int) {
        self.client = client
        self.target = target
        self.concurrency = concurrency
    }

    /// A fresh key and its label.
    func key(_ label: String) -> (value: String, label: String) { (client.freshKey(), label) }

    /// The target request with `key`.
    func send(
        _ actor: String,
        key: (value: String, label: String)?,
        body: [UInt8]? = nil,
        cut: ProbeClient.Cut = .none
    ) async
        -> (exchange: ProbeExchange, answer: ProbeClient.Answer?)
    {
        await client.send(actor, method: target.method, url: target.url, key: key, body: body ?? target.body, cut: cut)
    }

    /// `count` requests released together by a barrier, in the order they were started.
    func together<T: Sendable>(_ count: Int, _ request: @escaping @Sendable (Int) async -> T) async -> [T] {
        let barrier = Barrier(parties: count)
        return await withTaskGroup(of: (Int, T).self) { group in
            for index in 0..<count {
                group.addTask {
                    await barrier.arriveAndWait()
                    return (index, await request(index))
                }
            }
            var results: [(Int, T)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// One request with a fresh key between two reads of the count: what one execution moves it
    /// by (`nil` without a count URL, or when a read held no count). Measured once per run.
    func countUnit() async -> (unit: Int64?, exchanges: [ProbeExchange], evidence: [String]) {
        if let known = unit.withLock({ $0 }) { return (known, [], []) }
        guard target.countURL != nil else { return (nil, [], []) }
        let before = await client.count("count")
        let one = await send("calibration", key: key("calibration"))
        let after = await client.count("count")
        let exchanges = [before?.exchange, one.exchange, after?.exchange].compactMap { $0 }
        var measured: Int64?
        var evidence: [String] = []
        if let start = before?.value, let end = after?.value, let status = one.exchange.status, (200..<300).contains(status) {
            measured = end &- start
            evidence.append("one request moves the count by \(end &- start) (\(start) → \(end))")
        } else {
            evidence.append("the count could not be read around one request: the count checks are off")
        }
        if measured == 0 {
            evidence.append("one request does not move the count: the count checks are off")
            measured = nil
        }
        unit.withLock { $0 = .some(measured) }
        return (measured, exchanges, evidence)
    }

    /// The summary of a probe whose request was never accepted: it proves nothing.
    static func neverAccepted(_ exchanges: [ProbeExchange]) -> String {
        "the request was never accepted (\(statuses(exchanges))): check the URL, body and headers"
    }

    /// Statuses as `20 × 201, 12 × 409`.
    static func statuses(_ exchanges: [ProbeExchange]) -> String {
        var counts: [String: Int] = [:]
        for exchange in exchanges { counts[exchange.status.map(String.init) ?? "no answer", default: 0] += 1 }
        return counts.sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
    }

    /// The resources the answers to each key name, checked by the ``HistoryChecker``: a key whose
    /// answers name more than one resource took effect more than once. Only the target's own
    /// requests count (not the reads of the count).
    static func duplicateCreations(_ exchanges: [ProbeExchange]) -> [HistoryReport.Duplicate] {
        var entries: [HistoryEntry] = []
        var seen: Set<[String]> = []
        for exchange in exchanges where exchange.key != "none" {
            if let status = exchange.status { entries.append(.request(exchange.key, status: status, actor: exchange.actor)) }
            guard let identity = exchange.identity, seen.insert([exchange.key, identity]).inserted else { continue }
            entries.append(.effect(exchange.key, actor: "\(exchange.actor): \(exchange.location ?? identity)"))
        }
        return HistoryChecker.check(entries).duplicateEffects
    }

    /// Whether the count moved by more than `executions` requests' worth, in the direction one
    /// request moves it (a move the other way is someone else's, and is not counted).
    static func countExcess(before: Int64?, after: Int64?, unit: Int64?, executions: Int64) -> String? {
        guard let before, let after, let unit, unit != 0 else { return nil }
        let (moved, overflow) = after.subtractingReportingOverflow(before)
        guard !overflow, moved != 0, (moved > 0) == (unit > 0) else { return nil }
        let (allowed, tooMany) = unit.multipliedReportingOverflow(by: executions)
        guard !tooMany, moved.magnitude > allowed.magnitude else { return nil }
        return
            "the count moved by \(moved) (\(before) → \(after)); one request moves it by \(unit): \(moved.magnitude / unit.magnitude) executions, at most \(executions) expected"
    }

    /// The count's move during a probe, as evidence.
    static func countMoved(before: Int64?, after: Int64?) -> [String] {
        guard let before, let after else { return [] }
        return ["the count moved by \(Int128(after) - Int128(before)) during the probe (\(before) → \(after))"]
    }

    // MARK: Missing key

    /// The request without its key: refused is clean, accepted is a notice (a retry of it cannot
    /// be recognised). Any other answer says something only when the same request with a key is
    /// accepted: a control request with a fresh key tells (a wrong route, missing credentials or
    /// a server that is down answer both alike; then it is skipped). A "not yet" or throttled
    /// answer (408, 409, 425, 429, 503) is no refusal: skipped.
    func missingKey() async -> ProbeResult {
        let (exchange, _) = await send("request-1", key: nil)
        guard let status = exchange.status else {
            return ProbeResult(
                probe: .missingKey,
                verdict: .skipped,
                summary: "no answer: \(exchange.error ?? "?")",
                evidence: [],
                exchanges: [exchange]
            )
        }
        if (200..<300).contains(status) {
            return ProbeResult(
                probe: .missingKey,
                verdict: .notice,
                summary:
                    "accepted without a key (\(status)): a retry of such a request cannot be recognised; refusing it (400 or 428) is recommended",
                evidence: [],
                exchanges: [exchange]
            )
        }
        if Self.deferredStatuses.contains(status) || status == 408 {
            return ProbeResult(
                probe: .missingKey,
                verdict: .skipped,
                summary: "inconclusive: answered \(status) (not yet, or throttled), not a refusal",
                evidence: [],
                exchanges: [exchange]
            )
        }
        let control = await send("control", key: key("key-1"))
        guard let accepted = control.exchange.status, (200..<300).contains(accepted) else {
            return ProbeResult(
                probe: .missingKey,
                verdict: .skipped,
                summary: Self.neverAccepted([control.exchange]),
                evidence: [],
                exchanges: [exchange, control.exchange]
            )
        }
        let refused = (400..<500).contains(status)
        return ProbeResult(
            probe: .missingKey,
            verdict: refused ? .clean : .notice,
            summary: refused
                ? "refused without a key: \(status)" : "answered \(status) without a key (a refusal is a 4xx: 400 or 428 is recommended)",
            evidence: ["the same request with a key was accepted (\(accepted))"],
            exchanges: [exchange, control.exchange]
        )
    }

    // MARK: Key reuse

    /// A used key with another body: refused (which 4xx is said); answered 2xx is an anomaly.
    func keyReuse() async -> ProbeResult {
        let other = target.otherBody ?? BodyVariation(of: target.body, preferring: .integerFirst)?.body(1, run: "other")
        guard let other else {
            return ProbeResult(
                probe: .keyReuse,
                verdict: .skipped,
                summary: "the body has no integer or string field to change: give --other-body",
                evidence: [],
                exchanges: []
            )
        }
        let key = key("key-1")
        let first = await send("request-1", key: key)
        guard let firstStatus = first.exchange.status, (200..<300).contains(firstStatus) else {
            return ProbeResult(
                probe: .keyReuse,
                verdict: .skipped,
                summary: Self.neverAccepted([first.exchange]),
                evidence: [],
                exchanges: [first.exchange]
            )
        }
        let second = await send("request-2", key: key, body: other)
        var exchanges = [first.exchange, second.exchange]
        let result: (ProbeVerdict, String, [String])
        switch second.exchange.status {
        case nil:
            result = (.skipped, "no answer: \(second.exchange.error ?? "?")", [])
        case let status? where Self.deferredStatuses.contains(status) || status == 408:
            result = (.skipped, "inconclusive: answered \(status) (not yet, or throttled), not an outcome", [])
        case let status? where (400..<500).contains(status):
            // Refused — for the key, or for the body itself? The other body with a fresh key tells.
            let control = await send("control", key: self.key("key-2"), body: other)
            exchanges.append(control.exchange)
            if let code = control.exchange.status, (200..<300).contains(code) {
                let how = status == 422 ? "422, as the IETF draft says" : "\(status) (the IETF draft says 422)"
                result = (.clean, "refused: \(how)", ["the other body alone, with a fresh key, was accepted (\(code))"])
            } else {
                result = (
                    .skipped,
                    "inconclusive: the other body is refused on its own too (\(Self.statuses([control.exchange]))); give --other-body", []
                )
            }
        case let status? where (200..<300).contains(status):
            let replayed = first.exchange.bodySHA256 == second.exchange.bodySHA256 && firstStatus == status
            result = (
                .anomaly,
                replayed
                    ? "a used key with another body got the first request's answer (\(status)): the client is told its other request happened"
                    : "a used key with another body was executed (\(status))",
                [
                    "request-1 → \(firstStatus)\(first.exchange.identity.map { " id=\($0)" } ?? "")",
                    "request-2 (other body) → \(status)\(second.exchange.identity.map { " id=\($0)" } ?? "")",
                ]
            )
        case let status?:
            result = (.notice, "answered \(status) to a used key with another body", [])
        }
        return ProbeResult(probe: .keyReuse, verdict: result.0, summary: result.1, evidence: result.2, exchanges: exchanges)
    }
}
