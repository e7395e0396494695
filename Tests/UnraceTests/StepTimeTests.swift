import Testing
import Unrace

/// Every store decides a step at one time, read as the step takes its writer (or first lock),
/// never at the end of the caller's body.
@Suite("Step time")
struct StepTimeTests {
    @Test("a checkpoint's new lease counts from the step's start, not from after its body moved the clock", arguments: storeBackends)
    func checkpointLeaseFromStepStart(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.checkpointLease(store) }
    }

    static func checkpointLease<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.lease = .seconds(30)
        let operations = try Operations(store: store, configuration: configuration)
        let scope = try Scope(uniqueName("steptime"))
        guard case .acquired(let handle) = try await operations.begin(key: "k", scope: scope) else {
            Issue.record("no claim")
            return
        }
        clock.advance(by: .seconds(1))
        let started = clock.now()
        _ = try await operations.checkpoint(handle, recoveryPoint: 1) { _ in clock.advance(by: .seconds(5)) }
        guard case .inProgress(_, let leaseUntil) = try await operations.status(of: "k", scope: scope) else {
            Issue.record("not in progress")
            return
        }
        #expect(leaseUntil == started + .seconds(30), "lease until \(leaseUntil), step started at \(started)")
    }
}
