import Foundation

extension ProbeRun {
    /// ``concurrency`` writes of ``ProbeTarget/etagURL`` with the same `If-Match`, then as many
    /// without one, each writer's body told apart by one field: at most one write with the tag
    /// succeeds (the others 412), and without a tag the writes are refused (428) — or the writes
    /// that were each answered 2xx but do not stand in the final GET are reported as lost.
    func lostUpdate() async -> ProbeResult {
        guard let url = target.etagURL, let writeBody = target.writeBody else {
            return ProbeResult(
                probe: .lostUpdate,
                verdict: .skipped,
                summary: "needs --etag-url and --write-body",
                evidence: [],
                exchanges: []
            )
        }
        guard let variation = BodyVariation(of: writeBody, preferring: .stringFirst) else {
            return ProbeResult(
                probe: .lostUpdate,
                verdict: .skipped,
                summary: "--write-body must be a JSON object with a string or integer field",
                evidence: [],
                exchanges: []
            )
        }
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        var exchanges: [ProbeExchange] = []
        let read = await client.send("read", method: "GET", url: url, key: nil, body: [])
        exchanges.append(read.exchange)
        guard let etag = read.exchange.etag, read.exchange.status == 200 else {
            return ProbeResult(
                probe: .lostUpdate,
                verdict: .skipped,
                summary: "GET \(url) gave no ETag (\(Self.statuses([read.exchange])))",
                evidence: [],
                exchanges: exchanges
            )
        }
        let tagged = await writes(url, variation, run: run, first: 1, ifMatch: etag)
        let untagged = await writes(url, variation, run: run, first: concurrency + 1, ifMatch: nil)
        exchanges += tagged.exchanges + untagged.exchanges
        var findings = [tagged.finding, untagged.finding]
        if tagged.finding.0 == .clean, untagged.finding.0 == .clean { findings = [(.clean, tagged.finding.1 + "; " + untagged.finding.1)] }
        let verdict = findings.map(\.0).max() ?? .clean
        return ProbeResult(
            probe: .lostUpdate,
            verdict: verdict,
            summary: findings.filter { $0.0 == verdict }.map(\.1).joined(separator: "; "),
            evidence: tagged.evidence + untagged.evidence,
            exchanges: exchanges
        )
    }

    /// One round of concurrent writes (writers `first` … `first + concurrency - 1`), then a GET.
    private func writes(
        _ url: String,
        _ variation: BodyVariation,
        run: String,
        first: Int,
        ifMatch: String?
    ) async
        -> (exchanges: [ProbeExchange], finding: (ProbeVerdict, String), evidence: [String])
    {
        let method = target.writeMethod
        let headers = ifMatch.map { [ProbeTarget.Header("If-Match", $0)] } ?? []
        let label = ifMatch == nil ? "without If-Match" : "with If-Match \(ifMatch!)"
        let writes = await together(concurrency) { index in
            await self.client.send(
                "writer-\(first + index)",
                method: method,
                url: url,
                key: nil,
                body: variation.body(first + index, run: run),
                extraHeaders: headers
            ).exchange
        }
        let final = await client.send("final-read", method: "GET", url: url, key: nil, body: [])
        let succeeded = writes.filter { ($0.status.map { (200..<300).contains($0) }) ?? false }
        var evidence = ["\(label): \(Self.statuses(writes))"]
        // Whose write stands: the writer whose value the final GET shows.
        let shown = final.answer.flatMap { JSONValue.parse($0.body)?[variation.field] }
        let standing = (first..<(first + concurrency)).first { shown == variation.value($0, run: run) }.map { "writer-\($0)" }
        evidence.append("final GET: \(variation.field) = \(shown?.text ?? "?")\(standing.map { " (\($0)'s write)" } ?? "")")
        if succeeded.count > 1 {
            let lost = succeeded.map(\.actor).filter { $0 != standing }
            evidence.append("answered 2xx but not standing: \(lost.prefix(8).joined(separator: ", "))\(lost.count > 8 ? ", …" : "")")
            return (
                writes + [final.exchange],
                (
                    .anomaly,
                    "lost update \(label): \(succeeded.count) writes were each answered 2xx, the final state holds \(standing ?? "one") only — \(succeeded.count - 1) acknowledged writes are lost"
                ),
                evidence
            )
        }
        let refused = writes.compactMap(\.status).filter { (400..<500).contains($0) }
        let finding: (ProbeVerdict, String)
        if writes.contains(where: { $0.status == nil }) {
            finding = (.skipped, "\(label): some writes got no answer (\(writes.first { $0.status == nil }?.error ?? "?"))")
        } else if ifMatch == nil, refused.count == writes.count, refused.allSatisfy({ $0 == 428 }) {
            finding = (.clean, "without If-Match: refused with 428")
        } else if ifMatch != nil, succeeded.isEmpty {
            finding = (
                .skipped,
                "no write with the current ETag was accepted (\(Self.statuses(writes))): check --write-body, --write-method and the headers"
            )
        } else if ifMatch != nil, succeeded.count == 1, refused.count == writes.count - 1, refused.allSatisfy({ $0 == 412 }) {
            finding = (.clean, "\(label): one write won, \(refused.count) got 412")
        } else if succeeded.count <= 1, refused.count >= writes.count - 1 {
            finding = (.clean, "\(label): \(Self.statuses(writes))")
        } else {
            finding = (.notice, "\(label): \(Self.statuses(writes))")
        }
        return (writes + [final.exchange], finding, evidence)
    }
}
