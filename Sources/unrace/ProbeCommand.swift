public import ArgumentParser
import Foundation
import UnraceCore
public import UnraceProbe

/// `unrace probe URL`: sends an HTTP API the races the seed describes and reports what it saw.
struct ProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Probe any HTTP API for double execution and lost updates: concurrent duplicates, retries, key reuse, lost writes.",
        discussion: """
            The probes create what the request creates: point them at a local or staging service. \
            Only loopback and the hosts named with --allow-host are contacted; redirects are never \
            followed. Exits 1 when a probe saw an anomaly (whatever else went wrong), else 2 when the \
            probe could not run or an --html file cannot be written, 3 when every probe was skipped \
            (nothing was proved), 0 otherwise; a bad option exits 64.
            """
    )

    @Argument(help: "The URL of the request to attack, such as http://127.0.0.1:8080/orders.") var url: String
    @Option(help: "The request's method.") var method = "POST"
    @Option(help: "The request's body (JSON).") var body: String?
    @Option(help: "A file holding the request's body.") var bodyFile: String?
    @Option(name: .customLong("header"), help: "'Name: value' sent with every request (repeatable).") var headers: [String] = []
    @Option(help: "The header that carries the idempotency key.") var keyHeader = "Idempotency-Key"
    @Option(help: "How keys are written: quoted (the IETF draft's \"…\") or bare.") var keyFormat: ProbeTarget.KeyFormat = .quoted
    @Option(help: "The body the key-reuse probe sends under a used key (default: one field of --body changed).") var otherBody: String?
    @Option(help: "The answer's JSON field naming the created resource, when there is no Location.") var idField = "id"
    @Option(help: "A GET that counts what the request creates: a number, a JSON array, or an object (see --count-field).") var countUrl:
        String?
    @Option(help: "The field of --count-url's JSON object that holds the count.") var countField: String?
    @Option(help: "A resource whose GET gives an ETag: the lost-update probe writes it.") var etagUrl: String?
    @Option(help: "The lost-update probe's write method.") var writeMethod = "PUT"
    @Option(help: "The lost-update probe's write body (a JSON object; each writer changes one field).") var writeBody: String?
    @Option(
        name: .customLong("probe"),
        help: "A probe to run (repeatable; default all): duplicates, retry, key-reuse, missing-key, lost-update."
    )
    var probes: [ProbeKind] = []
    @Option(help: "Requests released at once by the concurrent probes (2 to 256).") var concurrency = 32
    @Option(help: "Seconds a request may take (1 to 120).") var timeout = 10
    @Option(name: .customLong("allow-host"), help: "A host besides loopback that may be probed (repeatable).") var allowedHosts: [String] =
        []
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Also draw the requests as a self-contained HTML timeline in this file.") var html: String?

    func validate() throws {
        // Everything but --body-file's content, which `run()` reads once: a pipe or a FIFO
        // (`/dev/stdin`, `<(…)`) gives its bytes to one reader only.
        _ = try prober(readingBodyFile: false)
    }

    /// The prober the options describe.
    func prober(readingBodyFile: Bool = true) throws -> Prober {
        guard body == nil || bodyFile == nil else { throw ValidationError("give --body or --body-file, not both") }
        var target = ProbeTarget(url: url, method: method)
        if let body { target.body = Array(body.utf8) }
        if let bodyFile, readingBodyFile {
            // Read no further than one byte past the limit, which the target then refuses.
            guard let data = readBounded(bodyFile, limit: ProbeTarget.bodyByteCountMaximum) else {
                throw ValidationError("cannot read --body-file \(bodyFile)")
            }
            target.body = Array(data)
        }
        target.headers = try headers.map { line in
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--header takes 'Name: value'") }
            return ProbeTarget.Header(parts[0], parts[1])
        }
        target.keyHeader = keyHeader
        target.keyFormat = keyFormat
        target.otherBody = otherBody.map { Array($0.utf8) }
        target.identityField = idField
        target.countURL = countUrl
        target.countField = countField
        target.etagURL = etagUrl
        target.writeMethod = writeMethod
        target.writeBody = writeBody.map { Array($0.utf8) }
        target.allowedHosts = allowedHosts
        var options = ProbeOptions()
        if !probes.isEmpty { options.probes = probes }
        options.concurrency = concurrency
        guard (1...120).contains(timeout) else { throw ValidationError("--timeout must be between 1 and 120 seconds") }
        options.requestTimeout = .seconds(timeout)
        do {
            return try Prober(target: target, options: options)
        } catch let error as UnraceError {
            throw ValidationError("\(error.message)\(error.detail.map { ": \($0)" } ?? "") [\(error.code)]")
        }
    }

    func run() async throws {
        let prober = try prober()  // a usage error (64) for a body file it cannot use
        let report: ProbeReport
        do {
            report = try await prober.run()
        } catch {
            FileHandle.standardError.write(Data("error: the probe could not run: \(error)\n".utf8))
            throw ExitCode(2)
        }
        print(json ? String(decoding: report.json(), as: UTF8.self) : report.table())
        var written = true
        if let html {
            written = writeOutputFile(report.timeline().html(), to: html)
        }
        // An anomaly outranks a file that could not be written: a script checking for 1 sees it.
        if report.hasAnomaly { throw ExitCode(1) }
        if !written { throw ExitCode(2) }
        if report.results.allSatisfy({ $0.verdict == .skipped }) { throw ExitCode(3) }
    }
}

extension ProbeKind: ExpressibleByArgument {}
extension ProbeTarget.KeyFormat: ExpressibleByArgument {}
