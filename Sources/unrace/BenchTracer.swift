import Synchronization
import Tracing

/// A small recording tracer for `unrace bench observability --tracer recording`: each span keeps
/// its name, attributes, status and times, and finished spans go to a bounded ring, as an exporter's
/// buffer would. It separates what Unrace's instrumentation costs from what a heavy test tracer
/// (`InMemoryTracer`, which keeps every span with its errors and events) costs.
struct RecordingTracer: Tracer {
    typealias Span = RecordingSpan

    /// The finished spans, at most `capacity`, the oldest overwritten.
    final class Ring: Sendable {
        let capacity = 4_096
        let state = Mutex<(spans: [RecordingSpan.Finished], next: Int, total: Int)>(([], 0, 0))

        func append(_ span: RecordingSpan.Finished) {
            state.withLock { state in
                if state.spans.count < capacity {
                    state.spans.append(span)
                } else {
                    state.spans[state.next] = span
                }
                state.next = (state.next + 1) % capacity
                state.total += 1
            }
        }

        var total: Int { state.withLock { $0.total } }
    }

    let ring = Ring()

    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> RecordingSpan {
        RecordingSpan(name: operationName, context: context(), start: instant().nanosecondsSinceEpoch, ring: ring)
    }

    func startAnySpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> any Tracing.Span {
        startSpan(operationName, context: context(), ofKind: kind, at: instant(), function: function, file: fileID, line: line)
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {}

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract.Carrier == Carrier {}
}

/// A span of ``RecordingTracer``.
final class RecordingSpan: Tracing.Span {
    struct Finished: Sendable {
        var name: String
        var attributes: SpanAttributes
        var status: SpanStatus?
        var start: UInt64
        var end: UInt64
    }

    let context: InstrumentationContext
    private let ring: RecordingTracer.Ring
    private let state: Mutex<Finished>

    init(name: String, context: InstrumentationContext, start: UInt64, ring: RecordingTracer.Ring) {
        self.context = context
        self.ring = ring
        self.state = Mutex(Finished(name: name, attributes: [:], status: nil, start: start, end: 0))
    }

    var operationName: String {
        get { state.withLock { $0.name } }
        set { state.withLock { $0.name = newValue } }
    }

    var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { $0.attributes = newValue } }
    }

    var isRecording: Bool { true }
    func setStatus(_ status: SpanStatus) { state.withLock { $0.status = status } }
    func addEvent(_ event: SpanEvent) {}
    func addLink(_ link: SpanLink) {}
    func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {}

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let end = instant().nanosecondsSinceEpoch
        ring.append(
            state.withLock { finished in
                finished.end = end
                return finished
            }
        )
    }
}
