import AsyncHTTPClient
import Foundation
import NIOCore
import UnraceCore

/// How hard and how long `unrace probe` pushes.
public struct ProbeOptions: Sendable {
    /// The bounds of ``concurrency``: 2 to 256 requests at once.
    public static let concurrencyRange = 2...256
    /// The bounds of ``requestTimeout``: 1 to 120 seconds.
    public static let requestTimeoutRange: ClosedRange<Duration> = .seconds(1) ... .seconds(120)

    /// The probes to run, in this order: all of them unless set.
    public var probes: [ProbeKind] = ProbeKind.allCases
    /// How many requests the concurrent probes release at once: 32 unless set.
    public var concurrency = 32
    /// The longest a request may take, connecting included: 10 seconds unless set.
    public var requestTimeout: Duration = .seconds(10)

    /// Options with the defaults.
    public init() {}

    /// Checks the bounds.
    /// - Throws: ``UnraceError/Code/invalidArgument``.
    public func validate() throws {
        guard Self.concurrencyRange.contains(concurrency) else {
            throw UnraceError(.invalidArgument, "concurrency must be between 2 and 256", detail: String(concurrency))
        }
        guard Self.requestTimeoutRange.contains(requestTimeout) else {
            throw UnraceError(.invalidArgument, "the request timeout must be between 1 and 120 seconds")
        }
        guard !probes.isEmpty, Set(probes).count == probes.count else {
            throw UnraceError(.invalidArgument, "name each probe at most once, and at least one")
        }
    }

    /// The most requests a run of every probe sends: ``concurrency`` for the duplicates, twice
    /// that for the lost-update writes (with and without `If-Match`), and at most 40 others.
    /// Saturating: a ``concurrency`` out of range (refused when the run starts) cannot overflow it.
    public var requestCountMaximum: Int {
        let (tripled, overflow) = max(0, concurrency).multipliedReportingOverflow(by: 3)
        return overflow || tripled > Int.max - 40 ? .max : tripled + 40
    }
}

/// A black-box prober: sends the races of ``ProbeKind`` to any HTTP API and reports what came
/// back. It only talks to the URLs its ``ProbeTarget`` names (loopback, or hosts the user
/// allowed), never follows redirects, and sends at most ``ProbeOptions/requestCountMaximum``
/// requests, each bounded by ``ProbeOptions/requestTimeout``.
///
/// The probes create what the request creates: run them against a staging service or a local one.
public struct Prober: Sendable {
    /// The request under attack.
    public let target: ProbeTarget
    /// How hard to push.
    public let options: ProbeOptions

    /// A prober; the target and options are checked here, before anything is sent.
    /// - Throws: ``UnraceError/Code/invalidArgument`` naming the first bad option.
    public init(target: ProbeTarget, options: ProbeOptions = .init()) throws {
        try target.validate()
        try options.validate()
        self.target = target
        self.options = options
    }

    /// Runs the probes one after the other on an HTTP client of its own.
    public func run() async throws -> ProbeReport {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: options.concurrency + 4)
        // Besides each request's deadline: a server that stops sending mid-answer is cut off too.
        let seconds = TimeAmount.seconds(Int64(options.requestTimeout.components.seconds))
        configuration.timeout = .init(connect: seconds, read: seconds)
        configuration.decompression = .disabled
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let report = await run(on: http)
            try await http.shutdown()
            return report
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    private func run(on http: HTTPClient) async -> ProbeReport {
        let client = ProbeClient(http: http, target: target, timeout: options.requestTimeout, origin: .now)
        let run = ProbeRun(client: client, target: target, concurrency: options.concurrency)
        var results: [ProbeResult] = []
        for probe in options.probes {
            switch probe {
            case .duplicates: results.append(await run.duplicates())
            case .retry: results.append(await run.retry())
            case .keyReuse: results.append(await run.keyReuse())
            case .missingKey: results.append(await run.missingKey())
            case .lostUpdate: results.append(await run.lostUpdate())
            }
        }
        return ProbeReport(target: "\(target.method) \(target.url)", results: results)
    }
}
