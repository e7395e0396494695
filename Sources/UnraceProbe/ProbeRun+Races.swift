import Foundation

extension ProbeRun {
    // MARK: Concurrent duplicates

    /// ``concurrency`` requests with one key, released at one instant: every answer the same, at
    /// most one resource named, the count moved at most once.
    func duplicates() async -> ProbeResult {
        let calibration = await countUnit()
        let before = await client.count("count")
        let key = key("key-1")
        let requests = await together(concurrency) { index in await self.send("request-\(index + 1)", key: key).exchange }
        let after = await client.count("count")
        let exchanges = calibration.exchanges + [before?.exchange].compactMap { $0 } + requests + [after?.exchange].compactMap { $0 }

        var anomalies: [String] = []
        var evidence = calibration.evidence + ["statuses: \(Self.statuses(requests))"]
        for duplicate in Self.duplicateCreations(requests) {
            anomalies.append("duplicate creation: one key, \(duplicate.count) distinct resources")
            evidence += duplicate.actors.prefix(8).map { "  \($0)" }
            if duplicate.actors.count > 8 { evidence.append("  … and \(duplicate.actors.count - 8) more") }
        }
        let differing = Self.differingAnswers(requests)
        if differing.count > 1 {
            anomalies.append("\(differing.count) different answers to one key")
            evidence += differing.prefix(4).map { "  \($0.count) × \($0.description)" }
        }
        if let excess = Self.countExcess(before: before?.value, after: after?.value, unit: calibration.unit, executions: 1) {
            anomalies.append("the count moved more than once")
            evidence.append(excess)
        } else {
            evidence += Self.countMoved(before: before?.value, after: after?.value)
        }
        let answered = requests.filter { $0.status != nil }
        let verdict: ProbeVerdict
        let summary: String
        if !anomalies.isEmpty {
            (verdict, summary) = (.anomaly, anomalies.joined(separator: "; "))
        } else if !requests.contains(where: { ($0.status.map { (200..<300).contains($0) }) ?? false }) {
            (verdict, summary) = (.skipped, Self.neverAccepted(requests))
        } else if answered.count < requests.count {
            (verdict, summary) = (
                .skipped,
                "\(requests.count - answered.count) of \(requests.count) requests got no answer: \(requests.first { $0.status == nil }?.error ?? "?")"
            )
        } else {
            let resources = Set(requests.compactMap(\.identity)).count
            (verdict, summary) = (
                .clean, "\(requests.count) requests, one key: the same answer to all, \(resources) resource\(resources == 1 ? "" : "s")"
            )
        }
        return ProbeResult(probe: .duplicates, verdict: verdict, summary: summary, evidence: evidence, exchanges: exchanges)
    }

    /// The distinct outcomes among the answers (status, `Location`, body), leaving out "not yet"
    /// answers (409, 425, 429, 503) when there is an outcome besides them.
    static func differingAnswers(_ exchanges: [ProbeExchange]) -> [(count: Int, description: String)] {
        let answered = exchanges.filter { $0.status != nil }
        let outcomes = answered.filter { !deferredStatuses.contains($0.status!) }
        var groups: [[String]: (count: Int, description: String)] = [:]
        for exchange in outcomes.isEmpty ? answered : outcomes {
            let shape = [String(exchange.status!), exchange.location ?? "", exchange.bodySHA256]
            let body = exchange.body.count > 80 ? String(exchange.body.prefix(80)) + "…" : exchange.body
            groups[shape, default: (0, "\(exchange.status!) \(exchange.location.map { "Location \($0) " } ?? "")\(body)")].count += 1
        }
        return groups.values.sorted { $0.count > $1.count }
    }

    // MARK: Retry

    /// The same key again after a complete answer, after a connection cut once the answer's head
    /// came, and after a connection cut as soon as the request was sent: each retry replays what
    /// the first did (or, when the first never ran, runs once), never runs it a second time.
    func retry() async -> ProbeResult {
        let calibration = await countUnit()
        let before = await client.count("count")
        var exchanges: [ProbeExchange] = []
        var findings: [(ProbeVerdict, String)] = []

        let answered = key("key-1")
        let first = await send("first", key: answered)
        guard let status = first.exchange.status, (200..<300).contains(status) else {
            let sent = calibration.exchanges + [before?.exchange].compactMap { $0 } + [first.exchange]
            return ProbeResult(
                probe: .retry,
                verdict: .skipped,
                summary: Self.neverAccepted([first.exchange]),
                evidence: [],
                exchanges: sent
            )
        }
        let again = await send("retry", key: answered)
        exchanges += [first.exchange, again.exchange]
        findings.append(Self.compare(first.exchange, again.exchange, after: "a complete answer"))
        var notes: [String] = []

        let headCut = key("key-2")
        let cutAfterHead = await send("cut-after-head", key: headCut, cut: .afterHead)
        let afterHead = await sendUntilOutcome("retry-after-head", key: headCut)
        exchanges += [cutAfterHead.exchange] + afterHead
        if cutAfterHead.exchange.identity == nil, calibration.unit == nil {
            notes.append(
                "after a cut after the answer's head: not checked — the head names no resource (no Location) and there is no --count-url"
            )
        } else {
            findings.append(Self.compare(cutAfterHead.exchange, afterHead.last!, after: "a cut after the answer's head"))
        }

        let sentCut = key("key-3")
        let cutAfterSending = await send("cut-after-send", key: sentCut, cut: .afterSending)
        exchanges.append(cutAfterSending.exchange)
        if cutAfterSending.exchange.error == ProbeClient.cutAfterSendingText {
            // The first execution may still run: a "not yet" answer (409, 425, 429, 503) is retried.
            let retried = await sendUntilOutcome("retry-after-send", key: sentCut)
            let retriedAgain = await send("retry-again", key: sentCut)
            exchanges += retried + [retriedAgain.exchange]
            findings.append(Self.compare(retried.last!, retriedAgain.exchange, after: "a cut before the answer, retried twice"))
            // The cut request never answered: only the count shows whether it ran as well as a retry.
            if calibration.unit == nil {
                notes.append(
                    "after a cut before the answer: the retries agree, but whether the cut request ran too is not checked — there is no --count-url"
                )
            }
        } else {
            notes.append("after a cut before the answer: \(cutAfterSending.exchange.error ?? "not run")")
        }

        let after = await client.count("count")
        exchanges = calibration.exchanges + [before?.exchange].compactMap { $0 } + exchanges + [after?.exchange].compactMap { $0 }
        var evidence = calibration.evidence
        // The history checker and the count back the comparisons up; they lead the summary only
        // when the comparisons saw nothing.
        let compared = findings.contains { $0.0 == .anomaly }
        for duplicate in Self.duplicateCreations(exchanges) {
            if !compared { findings.append((.anomaly, "\(duplicate.operation): \(duplicate.count) distinct resources for one key")) }
            evidence += duplicate.actors.map { "  \(duplicate.operation) \($0)" }
        }
        // One execution per key whose first request reached the server whole.
        let keys: Int64 = cutAfterSending.exchange.error == ProbeClient.cutAfterSendingText ? 3 : 2
        if let excess = Self.countExcess(before: before?.value, after: after?.value, unit: calibration.unit, executions: keys) {
            if !compared { findings.append((.anomaly, "\(keys) keys moved the count more than \(keys) times")) }
            evidence.append(excess)
        } else {
            evidence += Self.countMoved(before: before?.value, after: after?.value)
        }
        let verdict = findings.map(\.0).max() ?? .clean
        evidence = findings.map { "\($0.0.rawValue): \($0.1)" } + notes + evidence
        // The summary: the worst findings, each up to its dash (the evidence has the rest).
        let summary =
            verdict == .clean
            ? (notes.isEmpty
                ? "replayed after a complete answer, after a cut once the head came, and after a cut as soon as the request was sent"
                : "replayed where checked (see the notes)")
            : findings.filter { $0.0 == verdict }.map {
                String($0.1.split(separator: "—").first ?? "").trimmingCharacters(in: .whitespaces)
            }
            .joined(separator: "; ")
        return ProbeResult(probe: .retry, verdict: verdict, summary: summary, evidence: evidence, exchanges: exchanges)
    }

    /// The request with `key`, sent again while the answer is "not yet" (409, 425, 429, 503), at
    /// most ``outcomeAttemptsMaximum`` times, after its `Retry-After` (at most 2 s), else after
    /// 100 ms doubling per attempt up to 2 s (about 10 s in all).
    func sendUntilOutcome(_ actor: String, key: (value: String, label: String)) async -> [ProbeExchange] {
        var exchanges: [ProbeExchange] = []
        for attempt in 1...Self.outcomeAttemptsMaximum {
            let (exchange, answer) = await send(attempt == 1 ? actor : "\(actor)-\(attempt)", key: key)
            exchanges.append(exchange)
            guard let answer, Self.deferredStatuses.contains(answer.status), attempt < Self.outcomeAttemptsMaximum else { break }
            let retryAfter = answer.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds(min(max($0, 0), 2)) }
            try? await Task.sleep(for: retryAfter ?? min(.milliseconds(100 << (attempt - 1)), .seconds(2)))
        }
        return exchanges
    }

    /// How many times ``sendUntilOutcome(_:key:)`` asks: 8.
    static let outcomeAttemptsMaximum = 8

    /// A retry's answer against the first's.
    static func compare(_ first: ProbeExchange, _ retry: ProbeExchange, after: String) -> (ProbeVerdict, String) {
        guard let status = retry.status else { return (.skipped, "after \(after): the retry got no answer (\(retry.error ?? "?"))") }
        if let firstIdentity = first.identity, let identity = retry.identity, identity != firstIdentity {
            return (
                .anomaly,
                "after \(after): executed again — the retry names \(retry.location ?? identity), the first \(first.location ?? firstIdentity)"
            )
        }
        // Neither answer accepted the request: nothing to compare. A key still "not yet" after
        // every retry never reaches an outcome a client can learn.
        let accepted = 200..<300
        if !(first.status.map(accepted.contains) ?? false), !accepted.contains(status) {
            if Self.deferredStatuses.contains(status) {
                return (.notice, "after \(after): still \(status) after every retry: the key never reached an outcome a client can learn")
            }
            // The same refusal twice (or one after no answer) proves nothing; a "not yet" that
            // became another refusal is worth knowing.
            if let firstStatus = first.status, firstStatus != status {
                return (.notice, "after \(after): answered \(firstStatus), then \(status)")
            }
            return (
                .skipped,
                "after \(after): never accepted (\(first.status.map(String.init) ?? "no answer"), then \(status)), proves nothing"
            )
        }
        guard let firstStatus = first.status else { return (.clean, "after \(after): \(status)") }
        if first.error == nil, firstStatus == status, first.bodySHA256 == retry.bodySHA256, first.location == retry.location {
            return (.clean, "after \(after): replayed (\(status), the same answer)")
        }
        if first.error != nil, firstStatus == status, first.location == retry.location {
            return (.clean, "after \(after): replayed (\(status))")
        }
        if (200..<300).contains(firstStatus), (400..<500).contains(status) {
            return (
                .notice,
                "after \(after): the retry was refused (\(status)) instead of replayed: a client that lost the answer never learns it"
            )
        }
        return (.notice, "after \(after): answered \(firstStatus), then \(status) with a different answer")
    }
}
