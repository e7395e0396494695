import Logging
@_spi(Testing) public import Unrace

/// One simulated run's world: the scheduler and its virtual clock, the run's choices and fault
/// mix, the store every actor shares (memory or SQLite), and the actors themselves.
///
/// Scenarios build on it: they spawn actors, give them the ``store`` (a ``SimulatedStore``, so
/// every step is a scheduling point with the run's faults) and a broker, set up and check
/// invariants through ``direct`` (the same store, outside the run) once every actor has finished.
public final class World: @unchecked Sendable {
    /// Runs the actors one at a time.
    public let scheduler: Scheduler
    /// The run's decisions.
    @exclusivity(unchecked) public var choices: Choices
    /// The run's faults.
    @exclusivity(unchecked) public internal(set) var faults: FaultMix = .none
    /// The run's shipping store.
    let backend: SimulationBackend
    /// Guards switched off for a test of the checkers.
    let disabledGuards: DisabledGuards
    /// The store actors use: every step is a scheduling point.
    public var store: SimulatedStore { SimulatedStore(world: self, scheduled: true) }
    /// The same store for a scenario's set-up and checks: no scheduling, no faults.
    public var direct: SimulatedStore { SimulatedStore(world: self, scheduled: false) }
    /// The virtual clock, for the Unrace API's configuration.
    public let clock: SimulationClock
    /// When a run stops, in virtual milliseconds: loops check ``isOver``.
    public var timeLimit: Int64 = 600_000
    /// The most scheduling points a run may take before loops stop.
    public var stepLimit = 50_000
    /// Lines the scenario adds to the top of the trace: its settings (``setting(_:)``).
    public var header: [String] = []

    private var bodies: [(id: Int, body: @Sendable () async -> Void)] = []
    private var started = false
    /// Each simulated holder's `Operations`, made on first use.
    var holders: [String: Operations<SimulatedStore>] = [:]

    /// Where the run's Unrace API types log: nowhere unless the caller asked
    /// (``SimulationOptions/logger``) — the trace is the run's record, and expected events (a
    /// retried version conflict) would otherwise print a line each.
    public let observability: Observability

    init(choices: Choices, tracing: Bool, backend: SimulationBackend, disabledGuards: DisabledGuards, logger: Logger = World.silent) {
        self.observability = Observability(logger: logger)
        self.choices = choices
        scheduler = Scheduler(tracing: tracing)
        self.backend = backend
        self.disabledGuards = disabledGuards
        clock = SimulationClock(scheduler: scheduler)
    }

    /// Adds a line about the run's settings to the top of the trace. Without a trace the line
    /// is not even built: a sweep of thousands of seeds formats none of them.
    public func setting(_ line: @autoclosure () -> String) {
        if scheduler.trace != nil { header.append(line()) }
    }

    /// Every committed row of a business table, for a checker.
    public func rows(in table: String) async throws -> [String: [UInt8]] {
        try await backend.rows(in: table)
    }

    /// Whether the run has used up its virtual time or its steps.
    public var isOver: Bool { scheduler.now >= timeLimit || scheduler.steps >= stepLimit }

    /// Adds an actor that starts `delay` virtual milliseconds into the run. Actors are spawned
    /// while a scenario builds its world, before the run starts.
    ///
    /// A crash escaping `body` ends the actor (a worker catches crashes and restarts instead);
    /// any other error ends it too and is recorded in the trace.
    public func spawn(_ name: String, delay: Int64 = 0, _ body: @escaping @Sendable () async throws -> Void) {
        precondition(!started, "actors are spawned before the run starts")
        let id = scheduler.register(name: name, delay: delay)
        bodies.append(
            (
                id,
                { [scheduler] in
                    do {
                        try await body()
                    } catch is SimulatedCrash {
                        scheduler.record("crashed for good")
                    } catch {
                        scheduler.record("stopped: \(error)")
                    }
                }
            )
        )
    }

    /// Runs every spawned actor to its end.
    func run() async {
        started = true
        let bodies = self.bodies
        let scheduler = self.scheduler
        await withTaskGroup(of: Void.self) { group in
            for (id, body) in bodies {
                group.addTask {
                    await scheduler.park(id)
                    await body()
                    scheduler.finish()
                }
            }
        }
    }

    /// Lets go of what the run's actors captured once the run is checked. Their bodies capture
    /// this world, so keeping them would keep every run's world alive: a long sweep's memory
    /// would grow by each run's whole state. The holders' `Operations` go too.
    func end() {
        bodies = []
        holders = [:]
    }

    // MARK: Scheduling points for actors

    /// A scheduling point for local work that takes `duration` virtual milliseconds.
    public func work(_ duration: Int64, _ label: @autoclosure () -> String) async throws {
        try await point(duration, label())
    }

    /// A scheduling point subject to the run's faults: latency, pauses and crashes.
    /// - Throws: ``SimulatedCrash`` if the running actor crashes here (or already has).
    public func point(_ duration: Int64, _ label: @autoclosure () -> String, crashes: Bool = true) async throws {
        if scheduler.runningCrashed { throw SimulatedCrash() }
        var delay = duration
        if faults.latencyMaximum > 0 { delay += Int64(choices.below(Int(faults.latencyMaximum) + 1)) }
        let paused = faults.pausePerMille > 0 && choices.chance(perMille: faults.pausePerMille)
        if paused { delay += faults.pauseLength }
        await scheduler.point(after: delay)
        if crashes, faults.crashPerMille > 0, choices.chance(perMille: faults.crashPerMille) {
            scheduler.runningCrashed = true
            scheduler.record("\(label()) ✗ crash")
            throw SimulatedCrash()
        }
        scheduler.record(paused ? "\(label()) (after a \(faults.pauseLength)ms pause)" : label())
    }

    /// Adds `text` to the running actor's last trace line.
    public func annotate(_ text: @autoclosure () -> String) {
        scheduler.annotate(text())
    }

    /// Restarts the running actor after a crash: clears the crash and counts the incarnation.
    /// Returns the new incarnation number.
    public func restart() -> Int {
        scheduler.runningCrashed = false
        scheduler.runningIncarnation += 1
        return scheduler.runningIncarnation
    }
}

/// The simulator's ``WallClock``: virtual time; sleeping is a scheduling point.
///
/// An actor's clock may be skewed (``skewed(by:)``): it then models a machine's real-time clock
/// that runs ahead or behind, which a shared database replaces with its own.
public struct SimulationClock: WallClock {
    /// The virtual epoch: what `now()` answers at time 0.
    public static let epoch = Timestamp(milliseconds: 1_700_000_000_000)
    let scheduler: Scheduler
    /// How far this actor's clock is off, in milliseconds.
    public var skew: Int64 = 0

    /// The virtual now, as this clock reads it.
    public func now() -> Timestamp { Timestamp(milliseconds: Self.epoch.milliseconds + scheduler.now + skew) }

    /// A skewed clock is one machine's real-time clock; the world's own is the database's.
    public var isRealTime: Bool { skew != 0 }

    /// This clock, running `milliseconds` ahead (or behind, when negative).
    public func skewed(by milliseconds: Int64) -> SimulationClock {
        var clock = self
        clock.skew = milliseconds
        return clock
    }

    /// Lets `duration` of virtual time pass for the running actor; others run meanwhile.
    public func sleep(for duration: Duration) async throws {
        await scheduler.point(after: duration.wholeMilliseconds)
        scheduler.record("sleep \(duration.wholeMilliseconds)ms")
    }
}
