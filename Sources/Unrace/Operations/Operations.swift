public import CoreMetrics
import Foundation
public import Logging
public import UnraceCore

/// Idempotent business operations: the fix for the double-execution race.
///
/// A broker that did not get an ack in time redelivers, and a second worker runs the same
/// payment capture. `Operations` makes the second run a replay: it answers "has this operation
/// already been logically completed?" from a record kept under a unique key, in the same
/// transaction as the operation's own writes.
///
/// Two ways to use it:
/// - ``perform(key:scope:fingerprint:whenInProgress:_:)`` for local effects: the body's writes and
///   the completion record commit together, in one transaction.
/// - ``begin(key:scope:fingerprint:)`` then ``checkpoint(_:recoveryPoint:_:)`` /
///   ``complete(_:result:_:)`` / ``fail(_:reason:_:)`` for work with external calls, under a lease
///   with a fencing token.
public struct Operations<S: Store>: Sendable {
    /// How `Operations` behaves (see ``OperationsConfiguration``).
    public typealias Configuration = OperationsConfiguration

    /// The store records and business writes live in.
    public let store: S
    /// The validated configuration.
    public let configuration: Configuration
    let telemetry: Telemetry
    let metrics: OperationsMetrics

    /// Creates the API over a store.
    /// - Parameter observability: where metrics, spans and logs go (``OperationsConfiguration/metricsFactory``,
    ///   when set, takes precedence over its factory).
    /// - Throws: ``UnraceError`` (``UnraceError/Code/invalidLease``,
    ///   ``UnraceError/Code/invalidConfiguration``) for a configuration outside its bounds.
    public init(store: S, configuration: Configuration = .init(), observability: Observability = .init()) throws {
        self.store = store
        self.configuration = try configuration.validated()
        self.telemetry = Telemetry(
            api: "operations",
            store: store,
            observability: observability,
            metricsFactory: configuration.metricsFactory
        )
        self.metrics = OperationsMetrics(telemetry: telemetry, scopeLabel: configuration.metricsScopeLabel)
    }

    /// Creates the API over a store, logging through `logger`.
    public init(store: S, configuration: Configuration = .init(), logger: Logger) throws {
        try self.init(store: store, configuration: configuration, observability: Observability(logger: logger))
    }

    /// Creates the API with a lease and a retention, other settings at their defaults.
    public init(store: S, lease: Duration, retention: Duration, observability: Observability = .init()) throws {
        var configuration = Configuration()
        configuration.lease = lease
        configuration.retention = retention
        try self.init(store: store, configuration: configuration, observability: observability)
    }

    /// Creates the API with a lease and a retention, logging through `logger`.
    public init(store: S, lease: Duration, retention: Duration, logger: Logger) throws {
        try self.init(store: store, lease: lease, retention: retention, observability: Observability(logger: logger))
    }

    /// The logger notices and warnings go to.
    var logger: Logger { telemetry.logger }

    /// Refuses a scope outside ``OperationsConfiguration/allowedScopes`` with
    /// ``UnraceError/Code/unknownScope``: every call that names a scope asks this first.
    func checkScope(_ scope: Scope) throws {
        if let allowed = configuration.allowedScopes, !allowed.contains(scope) {
            throw UnraceError(.unknownScope, "scope is not in the configured allowedScopes", detail: "scope \(scope)")
        }
    }

    /// Validates a caller's key and scope into what a claim locks.
    func template(key: String, scope: Scope, fingerprint: Fingerprint) throws -> ClaimTemplate {
        let key = try OperationKey(key)
        try checkScope(scope)
        return ClaimTemplate(
            scope: scope,
            key: key,
            fingerprint: fingerprint,
            holder: configuration.holder,
            lease: configuration.lease,
            retention: configuration.retention
        )
    }

    func info(_ name: StaticString, _ key: OperationKey, isReadOnly: Bool = false) -> StepInfo {
        StepInfo(name, key.rawValue, clock: configuration.clock, isReadOnly: isReadOnly)
    }
}

/// What a claim step found: the record the caller now holds (and how to write it), or the
/// decision that kept it out. Shared by `perform` and `begin`.
enum Claimed: Sendable {
    /// How the acquired record reaches the store.
    enum Write: Sendable {
        /// The key had no row: insert it.
        case insert
        /// The key had a row (or the store reserved one): replace it.
        case update
    }

    case acquired(OperationRecord, Write, reserved: Bool)
    case notAcquired(ClaimDecision)

    /// Locks the key, decides on what it holds, and returns the outcome. Writes nothing: the caller
    /// saves the record when (and as) it chooses.
    static func claim<T>(_ context: StepContext<T>, _ claim: ClaimTemplate) async throws -> Claimed {
        let lock = try await context.rows.lockOperation(claim)
        let request = claim.request(at: try await context.rows.now())
        let existing: OperationRecord?
        switch lock {
        case .existing(let record): existing = record
        case .absent, .reserved: existing = nil
        }
        let decision = ClaimDecision.decide(existing: existing, request: request)
        guard let acquired = decision.acquiredRecord(for: request, existing: existing) else {
            context.note("→ \(decision.traceText)")
            return .notAcquired(decision)
        }
        context.note("→ acquired, token \(acquired.token.value)")
        switch lock {
        case .existing: return .acquired(acquired, .update, reserved: false)
        case .absent: return .acquired(acquired, .insert, reserved: false)
        case .reserved: return .acquired(acquired, .update, reserved: true)
        }
    }
}

extension ClaimDecision {
    /// How the simulator's trace shows a decision that kept a claimer out.
    var traceText: String {
        switch self {
        case .completed: "already completed"
        case .inProgress(let holder, _): "in progress (\(holder))"
        case .fingerprintMismatch: "fingerprint mismatch"
        case .insert, .takeOver: "free"
        }
    }
}

/// How `Operations` behaves. Every property has a documented default and bound.
public struct OperationsConfiguration: Sendable {
    /// The longest lease accepted: 24 hours.
    public static var leaseMaximum: Duration { .seconds(86_400) }
    /// The longest retention accepted: 3,650 days.
    public static var retentionMaximum: Duration { .seconds(86_400 * 3_650) }
    /// The longest a duplicate may wait for another holder's outcome: 10 minutes.
    public static var waitMaximum: Duration { .seconds(600) }
    /// The largest outcome an operation stores, as JSON: 64 MiB (an HTTP response the
    /// idempotency middleware stores, at most 16 MiB of body, fits). A larger one fails the
    /// step with `invalid_argument`, nothing stored. ``Records`` values have the same bound.
    public static var outcomeByteCountMaximum: Int { OutcomeCoding.byteCountMaximum }

    /// How long a holder owns a key before another claimer may take it over. Default 30 s;
    /// must be at least 1 ms and at most ``leaseMaximum``.
    public var lease: Duration = .seconds(30)
    /// How long a completed key is remembered (and its outcome replayed) before
    /// `purgeExpired(limit:)` may delete it. Default 24 h; 1 ms to ``retentionMaximum``.
    public var retention: Duration = .seconds(86_400)
    /// The scopes callers may use; `nil` (the default) allows any valid scope.
    public var allowedScopes: Set<Scope>? = nil
    /// The name this process claims keys under, shown to duplicates as the holder.
    /// Default: host name, process id and a random suffix.
    public var holder: String = Self.processHolder
    /// The clock for leases and retention. Default: the system wall clock — which PostgreSQL
    /// replaces with the database's own clock, so machines whose clocks disagree still agree on
    /// every lease (see ``WallClock/isRealTime``). A ``ManualWallClock`` is used as given, on every
    /// store, so tests move time by hand.
    public var clock: any WallClock = SystemWallClock()
    /// How often a waiting duplicate looks for the holder's outcome: 1 ms to 10 s, default 20 ms.
    public var waitPollInterval: Duration = .milliseconds(20)
    /// Where the counters go (claims by result, fenced writes, body failures; see the Metrics
    /// article). Default `nil`: the ``Observability``'s factory. When set, it takes precedence
    /// over that factory for this `Operations` (kept for code written before ``Observability``).
    public var metricsFactory: (any MetricsFactory)? = nil
    /// How a scope is written in the metrics' `scope` dimension. Default:
    /// the scope itself, except that every scope made per client (the idempotency middleware's
    /// principal scopes, ``UnraceCore/Scope/principalPrefix``) is written `principal` — one time
    /// series for all clients, not one per client. Scopes of your own made from outside input
    /// (a tenant id) are as unbounded: map them to a bounded set of labels here.
    public var metricsScopeLabel: @Sendable (Scope) -> String = OperationsConfiguration.defaultMetricsScopeLabel

    /// The default ``metricsScopeLabel``: `principal` for a per-client scope, else the scope.
    public static let defaultMetricsScopeLabel: @Sendable (Scope) -> String = {
        $0.rawValue.hasPrefix(Scope.principalPrefix) ? "principal" : $0.rawValue
    }

    /// The all-defaults configuration.
    public init() {}

    /// This process's holder name, made once: the host name lookup and the random suffix are
    /// not free, and every `Operations` of a process may share the name.
    static let processHolder: String = {
        let host = ProcessInfo.processInfo.hostName.prefix(64)
        return "\(host):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8))"
    }()

    func validated() throws -> OperationsConfiguration {
        guard lease > .zero, lease.wholeMilliseconds >= 1 else {
            throw UnraceError(.invalidLease, "lease must be at least 1 millisecond")
        }
        guard lease <= Self.leaseMaximum else {
            throw UnraceError(.invalidLease, "lease must be at most 24 hours")
        }
        guard retention.wholeMilliseconds >= 1, retention <= Self.retentionMaximum else {
            throw UnraceError(.invalidConfiguration, "retention must be between 1 millisecond and 3650 days")
        }
        guard waitPollInterval.wholeMilliseconds >= 1, waitPollInterval <= .seconds(10) else {
            throw UnraceError(.invalidConfiguration, "waitPollInterval must be between 1 millisecond and 10 seconds")
        }
        var validated = self
        do {
            validated.holder = try NameRule(kind: "holder", code: .invalidConfiguration).validate(holder)
        } catch {
            throw UnraceError(.invalidConfiguration, "holder must be 1 to 255 bytes of printable UTF-8", underlying: error)
        }
        return validated
    }
}

/// What a duplicate does when another holder is running the operation.
public struct InProgressPolicy: Sendable, Hashable {
    let wait: Duration?

    /// Throw ``UnraceError/Code/inProgress`` at once, with the holder's lease end in the detail.
    public static let failFast = InProgressPolicy(wait: nil)

    /// Wait up to `timeout` for the holder's outcome (at most
    /// ``OperationsConfiguration/waitMaximum``), then throw ``UnraceError/Code/waitTimedOut``.
    public static func wait(upTo timeout: Duration) -> InProgressPolicy { InProgressPolicy(wait: timeout) }
}
