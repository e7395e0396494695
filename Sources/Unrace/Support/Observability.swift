public import CoreMetrics
public import Logging
public import Tracing

/// Where an API type reports what it does: metrics, trace spans and logs.
///
/// Every API type (``Operations``, ``Records``, ``Counters``, ``Reservations``, ``Ledger``,
/// ``Inbox``, ``LifecycleGuard``, ``MessageQueue``) takes one. The defaults report to what the
/// process bootstrapped — swift-metrics' `MetricsSystem`, swift-distributed-tracing's
/// `InstrumentationSystem` — and log through a `Logger` labelled `unrace`; with nothing
/// bootstrapped (the no-op factory and tracer), a step runs with no metric, span or clock read
/// around it.
///
/// What is reported never contains a payload, and contains an operation key only as
/// ``KeyLogging`` allows (in logs; metrics and spans never carry keys). See the *Metrics* article
/// for every name, dimension and attribute.
public struct Observability: Sendable {
    /// Where counters, gauges and timers go. Default `nil`: the bootstrapped `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?
    /// Where spans go. Default `nil`: the bootstrapped `InstrumentationSystem.tracer`.
    public var tracer: (any Tracer)?
    /// Where notices and warnings (takeovers, fenced writes, retries, gaps) go.
    public var logger: Logger
    /// How an operation key appears in log metadata. Default ``KeyLogging/hashed``.
    public var keys: KeyLogging

    /// Reports to what the process bootstrapped, logging through `logger`.
    public init(
        logger: Logger = Logger(label: "unrace"),
        metricsFactory: (any MetricsFactory)? = nil,
        tracer: (any Tracer)? = nil,
        keys: KeyLogging = .hashed
    ) {
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.tracer = tracer
        self.keys = keys
    }
}

/// How an operation key appears in log metadata (metrics and spans never carry keys).
public enum KeyLogging: Sendable, Hashable {
    /// As `key_hash`: the first 12 hex digits of SHA-256 over the scope, a zero byte and the key.
    /// Lines about one key correlate across processes; the key is not written. A key that is easy
    /// to guess (an order number) can still be confirmed by someone holding the logs who
    /// hashes the guess: choose ``omitted`` for those.
    case hashed
    /// Not at all.
    case omitted
}
