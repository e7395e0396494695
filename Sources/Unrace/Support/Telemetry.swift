import CoreMetrics
import Crypto
import Logging
import Synchronization
import Tracing
import UnraceCore

/// What one API type reports through, made once from its ``Observability``: a span and a
/// latency sample around every store step, failures by code, and the API's own counters.
///
/// Dimensions and attributes are the API, the store, the step's name and outcomes; never a key,
/// a subject or a payload (a step's `subject` is for the simulator's trace only).
struct Telemetry: Sendable {
    /// The API type, as the `api` dimension spells it (`operations`, `records`, …).
    let api: String
    /// The store's ``Store/backendName`` (`sqlite`, `postgres`, `fluent-sqlite`, `memory`, …).
    let store: String
    let factory: any MetricsFactory
    /// The metric objects made so far, shared by copies: swift-metrics' advice is to make a metric
    /// once and keep it, and some factories (Prometheus's) do real work per lookup.
    let handles: MetricHandles
    let tracer: any Tracer
    let logger: Logger
    let keys: KeyLogging
    /// Whether spans are made: not for swift-distributed-tracing's no-op tracer, whose spans go
    /// nowhere (a step then runs without a span or a service-context push).
    let isTracing: Bool

    init(api: String, store: some Store, observability: Observability, metricsFactory: (any MetricsFactory)? = nil) {
        self.api = api
        self.store = store.backendName
        self.factory = metricsFactory ?? observability.metricsFactory ?? MetricsSystem.factory
        self.handles = MetricHandles(factory: factory)
        self.tracer = observability.tracer ?? InstrumentationSystem.tracer
        self.isTracing = !(tracer is NoOpTracer)
        self.logger = observability.logger
        self.keys = observability.keys
    }

    // MARK: Steps and calls

    /// Runs one store step inside a span `unrace.step.<step>`, recording its latency in
    /// `unrace_step_duration_seconds` and a failure in `unrace_step_failures_total` by code. What
    /// nothing observes is not done: no latency timing without metrics, no span without a tracer.
    /// The step's own clock is read once, to refuse a reading past ``Timestamp/latestReading``.
    func step<S: Store, T: Sendable>(
        _ store: S,
        _ info: StepInfo,
        _ body: (StepContext<S.Transaction>) async throws -> T
    ) async throws -> T {
        let start = handles.isNoOp ? nil : ContinuousClock.now
        do {
            // Every step may decide on its clock, so a reading past Timestamp.latestReading refuses
            // the step before it begins, whether or not this step reads the time.
            _ = try info.clock.now().checkedReading()
            // Without a tracer, the step is called directly: no span, no extra frame on this path.
            let result =
                isTracing
                ? try await Self.run(tracer, "unrace.step.\(info.name)", api: api, store: self.store) { _ in
                    try await store.step(info, body)
                }
                : try await store.step(info, body)
            if let start { record(step: info.name.description, since: start) }
            return result
        } catch {
            if let start {
                record(step: info.name.description, since: start)
                handles.counter("unrace_step_failures_total", stepDimensions(info.name.description) + [("code", Self.code(of: error))])
                    .increment()
            }
            throw error
        }
    }

    /// Runs `body` inside a span `unrace.<api>.<name>` carrying the store and the API; a failure
    /// sets the span's status and an `unrace.error.code` attribute, never the error's text.
    func span<T>(_ name: String, _ body: (any Span) async throws -> T) async throws -> T {
        try await traced("unrace.\(api).\(name)", body)
    }

    /// `body` in a span named `name`, or — with the no-op tracer, whose spans go nowhere — bare,
    /// with a no-op span and no service-context push (the name is then never built). `step`
    /// makes the same choice inline, to keep its hot path one frame shorter.
    private func traced<T>(_ name: @autoclosure () -> String, _ body: (any Span) async throws -> T) async throws -> T {
        guard isTracing else { return try await body(NoOpTracer.NoOpSpan(context: ServiceContext.current ?? .topLevel)) }
        return try await Self.run(tracer, name(), api: api, store: store, body)
    }

    private static func run<Tr: Tracer, T>(
        _ tracer: Tr,
        _ name: String,
        api: String,
        store: String,
        _ body: (any Span) async throws -> T
    ) async throws -> T {
        let span = tracer.startSpan(name, context: ServiceContext.current ?? .topLevel, ofKind: .internal)
        defer { span.end() }
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes["unrace.api"] = api
                attributes["unrace.store"] = store
            }
        }
        do {
            return try await ServiceContext.$current.withValue(span.context) { try await body(span) }
        } catch {
            span.attributes["unrace.error.code"] = Self.code(of: error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Log metadata for an error: its code and, for an ``UnraceError``, its message — never its
    /// detail or underlying error, which may name a key.
    static func errorMetadata(_ error: any Error) -> Logger.Metadata {
        if let error = error as? UnraceError { return ["error_code": "\(error.code.rawValue)", "error": "\(error.message)"] }
        return ["error_code": "\(code(of: error))", "error_type": "\(String(reflecting: type(of: error)))"]
    }

    /// An error's stable code for a dimension: an ``UnraceError``'s code, else `other`.
    static func code(of error: any Error) -> String {
        if let error = error as? UnraceError { return error.code.rawValue }
        if error is CancellationError { return "cancelled" }
        return "other"
    }

    // MARK: Metrics

    private func record(step: String, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        handles.timer("unrace_step_duration_seconds", stepDimensions(step)).recordNanoseconds(nanoseconds)
    }

    /// Adds `amount` to the counter `label`, dimensioned by the store (and `extra`).
    func count(_ label: String, _ extra: [(String, String)] = [], by amount: Int = 1) {
        guard amount > 0 else { return }
        handles.counter(label, dimensions(extra)).increment(by: amount)
    }

    /// Sets the gauge `label`, dimensioned by the store (and `extra`).
    func gauge(_ label: String, _ extra: [(String, String)] = [], _ value: Int) {
        handles.gauge(label, dimensions(extra)).record(value)
    }

    /// Records `value` in the histogram `label`, dimensioned by the store (and `extra`).
    func sample(_ label: String, _ extra: [(String, String)] = [], _ value: Int) {
        handles.recorder(label, dimensions(extra)).record(value)
    }

    private func dimensions(_ extra: [(String, String)]) -> [(String, String)] {
        [("store", store)] + extra
    }

    private func stepDimensions(_ step: String) -> [(String, String)] {
        [("api", api), ("store", store), ("step", step)]
    }

    // MARK: Logs

    /// Log metadata naming a key as ``KeyLogging`` allows: `key_hash`, or nothing.
    func keyMetadata(scope: String, key: String) -> Logger.Metadata {
        switch keys {
        case .omitted: return [:]
        case .hashed: return ["key_hash": "\(Self.hash(scope: scope, key: key))"]
        }
    }

    /// The first 12 hex digits of SHA-256 over the scope, a zero byte and the key.
    static func hash(scope: String, key: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(scope.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(key.utf8))
        return hasher.finalize().prefix(6).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// Metric objects by label and dimensions, made once per factory and kept. Dimensions are bounded
/// sets of values (outcomes, step names, stores), so the cache is too.
final class MetricHandles: Sendable {
    private struct Key: Hashable {
        var kind: UInt8
        var label: String
        var dimensions: [String]
    }

    let factory: any MetricsFactory
    private let handles = Mutex<[Key: any Sendable]>([:])
    /// With swift-metrics' no-op factory (nothing bootstrapped), one shared no-op handle of each
    /// kind, handed out without building a key or taking the lock: what it records goes nowhere.
    private let noOp: (counter: Counter, timer: CoreMetrics.Timer, gauge: Gauge, recorder: Recorder)?

    /// Whether metrics go nowhere (swift-metrics' no-op factory): callers may skip measuring.
    var isNoOp: Bool { noOp != nil }

    init(factory: any MetricsFactory) {
        self.factory = factory
        noOp = factory is NOOPMetricsHandler ? Self.sharedNoOp : nil
    }

    /// The no-op handles, made once for the process.
    private static let sharedNoOp = (
        counter: Counter(label: "unrace_noop", dimensions: [], factory: NOOPMetricsHandler.instance),
        timer: CoreMetrics.Timer(label: "unrace_noop", dimensions: [], factory: NOOPMetricsHandler.instance),
        gauge: Gauge(label: "unrace_noop", dimensions: [], factory: NOOPMetricsHandler.instance),
        recorder: Recorder(label: "unrace_noop", dimensions: [], factory: NOOPMetricsHandler.instance)
    )

    func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        if let noOp { return noOp.counter }
        return handle(0, label, dimensions) { Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        if let noOp { return noOp.timer }
        return handle(1, label, dimensions) {
            CoreMetrics.Timer(label: label, dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory)
        }
    }

    func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        if let noOp { return noOp.gauge }
        return handle(2, label, dimensions) { Gauge(label: label, dimensions: dimensions, factory: factory) }
    }

    func recorder(_ label: String, _ dimensions: [(String, String)]) -> Recorder {
        if let noOp { return noOp.recorder }
        return handle(3, label, dimensions) { Recorder(label: label, dimensions: dimensions, aggregate: true, factory: factory) }
    }

    private func handle<M: Sendable>(_ kind: UInt8, _ label: String, _ dimensions: [(String, String)], make: () -> M) -> M {
        var flat: [String] = []
        flat.reserveCapacity(dimensions.count * 2)
        for (name, value) in dimensions {
            flat.append(name)
            flat.append(value)
        }
        let key = Key(kind: kind, label: label, dimensions: flat)
        return handles.withLock { handles in
            if let existing = handles[key] as? M { return existing }
            let made = make()
            handles[key] = made
            return made
        }
    }
}
