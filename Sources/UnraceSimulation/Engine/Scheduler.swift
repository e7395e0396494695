/// Runs simulated actors one at a time, in an order decided by virtual time and the run's
/// choices, never by the Swift executor.
///
/// Every actor is a Swift task, but at most one of them runs at any moment: the one holding
/// the baton. An actor gives the baton up only at a *scheduling point* (``point(after:)``),
/// saying how long its next step takes in virtual time; the scheduler then resumes the actor
/// whose next step is due first (ties go to the one that has waited longest) and moves the
/// virtual clock to it. Nothing between two scheduling points can interleave with anything
/// else, so a run is a pure function of its choices.
///
/// The state is touched only by the baton holder (or, before the first actor runs, by tasks
/// that are all parked), which is why the class can be `@unchecked Sendable` without locks;
/// ``SimulationExecutor`` keeps every job of a run on one thread as well.
public final class Scheduler: @unchecked Sendable {
    struct Actor {
        var name: String
        var readyAt: Int64
        var order: UInt64
        var continuation: UnsafeContinuation<Void, Never>?
        var finished = false
        var crashed = false
        var incarnation = 0
    }

    // Only the baton holder touches these, one at a time, so the dynamic exclusivity checks
    // (a measurable share of a step) are switched off for them.
    @exclusivity(unchecked) private var actors: [Actor] = []
    @exclusivity(unchecked) private var parked = 0
    @exclusivity(unchecked) private var live = 0
    @exclusivity(unchecked) private var nextOrder: UInt64 = 0
    /// The actor holding the baton, if any.
    @exclusivity(unchecked) public private(set) var running: Int?
    /// Virtual milliseconds since the start of the run.
    @exclusivity(unchecked) public private(set) var now: Int64 = 0
    /// Scheduling points passed so far: the run's steps.
    @exclusivity(unchecked) public private(set) var steps = 0
    /// The readable trace, when tracing is on.
    @exclusivity(unchecked) public private(set) var trace: [String]?

    /// A scheduler with the clock at 0.
    public init(tracing: Bool) {
        trace = tracing ? [] : nil
    }

    /// Registers an actor that becomes runnable `delay` milliseconds from now. Returns its id.
    func register(name: String, delay: Int64 = 0) -> Int {
        actors.append(Actor(name: name, readyAt: now + delay, order: nextOrder))
        nextOrder += 1
        live += 1
        return actors.count - 1
    }

    /// Waits for the actor's first turn. Every registered actor calls this once before its body.
    func park(_ id: Int) async {
        await withUnsafeContinuation { continuation in
            actors[id].continuation = continuation
            parked += 1
            if running == nil, parked == live { resumeNext() }
        }
    }

    /// A scheduling point: the running actor's next step completes `delay` virtual milliseconds
    /// from now (at the end of time at most); other actors whose steps are due earlier run first.
    /// Outside any simulated actor there is nothing to schedule: it returns at once.
    public func point(after delay: Int64) async {
        guard let id = running else { return }
        steps += 1
        let (due, overflow) = now.addingReportingOverflow(max(0, delay))
        actors[id].readyAt = overflow ? .max : due
        actors[id].order = nextOrder
        nextOrder += 1
        let next = nextActor()
        if next == id {
            now = max(now, actors[id].readyAt)
            return
        }
        await withUnsafeContinuation { continuation in
            actors[id].continuation = continuation
            parked += 1
            resume(next)
        }
    }

    /// Marks the running actor finished and hands the baton on.
    func finish() {
        guard let id = running else { return }
        actors[id].finished = true
        live -= 1
        running = nil
        if live > 0 { resumeNext() }
    }

    /// Appends a line to the trace (when tracing): the time, the running actor and `step`.
    public func record(_ step: @autoclosure () -> String) {
        guard trace != nil else { return }
        trace!.append("\(Self.format(now)) \(runningName.padding(16)) \(step())")
    }

    /// Appends `text` to the last trace line, if the running actor wrote it.
    func annotate(_ text: @autoclosure () -> String) {
        guard trace != nil, let last = trace!.indices.last else { return }
        trace![last] += " \(text())"
    }

    /// The running actor's name, for the trace.
    private var runningName: String { running.map { actors[$0].name } ?? "world" }

    /// Whether the running actor has crashed (its calls fail until it restarts).
    var runningCrashed: Bool {
        get { running.map { actors[$0].crashed } ?? false }
        set { if let id = running { actors[id].crashed = newValue } }
    }

    /// How many times the running actor has restarted after a crash.
    var runningIncarnation: Int {
        get { running.map { actors[$0].incarnation } ?? 0 }
        set { if let id = running { actors[id].incarnation = newValue } }
    }

    private func nextActor() -> Int {
        var best = -1
        for index in actors.indices where !actors[index].finished {
            if best < 0 || (actors[index].readyAt, actors[index].order) < (actors[best].readyAt, actors[best].order) {
                best = index
            }
        }
        return best
    }

    private func resumeNext() {
        let next = nextActor()
        if next >= 0 { resume(next) }
    }

    private func resume(_ id: Int) {
        guard let continuation = actors[id].continuation else {
            preconditionFailure("actor \(actors[id].name) is not parked")
        }
        actors[id].continuation = nil
        parked -= 1
        running = id
        now = max(now, actors[id].readyAt)
        continuation.resume()
    }

    static func format(_ milliseconds: Int64) -> String {
        "t=\(milliseconds / 1_000).\(String(milliseconds % 1_000).leftPadded(3))s".padding(10)
    }
}
