import CoreMetrics

/// The counters `Operations` keeps, through swift-metrics. Dimensions are the scope (as
/// ``OperationsConfiguration/metricsScopeLabel`` writes it), the store
/// (`sqlite`, `postgres`, `memory`) and the outcome; never a key, a holder or a payload.
///
/// | label | dimensions | counts |
/// |---|---|---|
/// | `unrace_operation_claims_total` | scope, store, result | a `perform` or `begin` that ended in `acquired`, `taken_over`, `replayed`, `in_progress` or `mismatch` |
/// | `unrace_operation_fenced_total` | scope, store | holder writes refused because the key was taken over |
/// | `unrace_operation_body_failures_total` | scope, store | `perform` bodies that threw (nothing of them committed) |
struct OperationsMetrics: Sendable {
    /// A claim's outcome, as the `result` dimension spells it.
    enum ClaimResult: String, Sendable {
        case acquired
        case takenOver = "taken_over"
        case replayed
        case inProgress = "in_progress"
        case mismatch
    }

    let handles: MetricHandles
    let store: String
    let scopeLabel: @Sendable (Scope) -> String

    /// Counts through `telemetry`'s metric handles, under its store label.
    init(telemetry: Telemetry, scopeLabel: @escaping @Sendable (Scope) -> String = { $0.rawValue }) {
        self.handles = telemetry.handles
        self.store = telemetry.store
        self.scopeLabel = scopeLabel
    }

    func claim(_ result: ClaimResult, scope: Scope) {
        handles.counter("unrace_operation_claims_total", dimensions(scope) + [("result", result.rawValue)]).increment()
    }

    /// Counts the outcome a decision that kept the caller out stands for.
    func claim(_ decision: ClaimDecision, scope: Scope) {
        switch decision {
        case .completed: claim(.replayed, scope: scope)
        case .fingerprintMismatch: claim(.mismatch, scope: scope)
        case .inProgress: claim(.inProgress, scope: scope)
        case .insert, .takeOver: break
        }
    }

    func fenced(scope: Scope) {
        handles.counter("unrace_operation_fenced_total", dimensions(scope)).increment()
    }

    func bodyFailure(scope: Scope) {
        handles.counter("unrace_operation_body_failures_total", dimensions(scope)).increment()
    }

    private func dimensions(_ scope: Scope) -> [(String, String)] { [("scope", scopeLabel(scope)), ("store", store)] }
}
