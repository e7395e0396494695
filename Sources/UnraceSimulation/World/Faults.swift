/// The kinds of fault a simulated run can inject.
public enum FaultKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// Store calls take a random time (0 to the mix's maximum latency).
    case latency
    /// A store call fails before it runs (`store_unavailable`); nothing is written.
    case transient
    /// A store call commits, then its reply is lost: the caller sees `store_unavailable`.
    case lostReply
    /// An actor crashes at a scheduling point; a worker restarts, its unacked message returns.
    case crash
    /// An actor stops for a long time at a scheduling point (a GC pause, a frozen VM).
    case pause
    /// The producer publishes a message twice (a retried send).
    case duplicatePublish
    /// A worker's processing sometimes takes longer than the broker's visibility timeout.
    case slowWork
    /// Actors' clocks disagree: each worker's runs ahead or behind by up to the mix's bound (a
    /// machine whose NTP drifted). The simulated database keeps its own clock.
    case clockSkew
}

/// The faults of one run and how often each strikes, drawn from the run's seed.
///
/// Swarm testing: instead of every fault at a fixed rate in every run, each run enables its
/// own subset at its own rates, so some runs are quiet enough for a rare interleaving and
/// others are storms. A scenario lists the kinds that make sense for it; the rest stay off.
public struct FaultMix: Sendable, Hashable, CustomStringConvertible {
    /// The most a scheduling point (a store call, a broker interaction, work, idling, a restart)
    /// takes, in virtual milliseconds.
    public var latencyMaximum: Int64 = 0
    /// Per store call, in thousandths: the store refuses the call (`store_unavailable`).
    public var transientPerMille = 0
    /// Per store call, in thousandths.
    public var lostReplyPerMille = 0
    /// Per scheduling point of a worker, in thousandths.
    public var crashPerMille = 0
    /// Per scheduling point, in thousandths.
    public var pausePerMille = 0
    /// How long a pause lasts, in virtual milliseconds.
    public var pauseLength: Int64 = 0
    /// Per published message, in thousandths.
    public var duplicatePerMille = 0
    /// Per processed message, in thousandths.
    public var slowWorkPerMille = 0
    /// The largest clock skew of an actor, either way, in virtual milliseconds.
    public var skewMaximum: Int64 = 0

    /// No faults at all.
    public static let none = FaultMix()

    /// Draws a mix of the `allowed` kinds: each kind is on or off by a coin flip, and an
    /// enabled kind draws its own rate. `pauseLength` is chosen by the scenario so that a pause
    /// outlives its leases.
    public static func draw(_ allowed: Set<FaultKind>, pauseLength: Int64, choices: inout Choices) -> FaultMix {
        draw(allowed, pauseLength: pauseLength, skewLength: 0, choices: &choices)
    }

    /// Draws a mix, with clock skews of up to `skewLength` when the scenario allows them.
    public static func draw(_ allowed: Set<FaultKind>, pauseLength: Int64, skewLength: Int64, choices: inout Choices) -> FaultMix {
        var mix = FaultMix()
        func enabled(_ kind: FaultKind) -> Bool { allowed.contains(kind) && choices.chance(perMille: 500) }
        if enabled(.latency) { mix.latencyMaximum = Int64(choices.inRange(1...40)) }
        if enabled(.transient) { mix.transientPerMille = choices.inRange(5...60) }
        if enabled(.lostReply) { mix.lostReplyPerMille = choices.inRange(5...60) }
        if enabled(.crash) { mix.crashPerMille = choices.inRange(5...40) }
        if enabled(.pause) {
            mix.pausePerMille = choices.inRange(10...80)
            mix.pauseLength = pauseLength
        }
        if enabled(.duplicatePublish) { mix.duplicatePerMille = choices.inRange(50...300) }
        if enabled(.slowWork) { mix.slowWorkPerMille = choices.inRange(50...400) }
        if enabled(.clockSkew) { mix.skewMaximum = skewLength }
        return mix
    }

    /// The enabled kinds with their rates, for the trace header.
    public var description: String {
        var parts: [String] = []
        if latencyMaximum > 0 { parts.append("latency≤\(latencyMaximum)ms") }
        if transientPerMille > 0 { parts.append("transient \(transientPerMille)‰") }
        if lostReplyPerMille > 0 { parts.append("lost-reply \(lostReplyPerMille)‰") }
        if crashPerMille > 0 { parts.append("crash \(crashPerMille)‰") }
        if pausePerMille > 0 { parts.append("pause \(pausePerMille)‰ × \(pauseLength)ms") }
        if duplicatePerMille > 0 { parts.append("duplicate-publish \(duplicatePerMille)‰") }
        if slowWorkPerMille > 0 { parts.append("slow-work \(slowWorkPerMille)‰") }
        if skewMaximum > 0 { parts.append("clock-skew ≤±\(skewMaximum)ms") }
        return parts.isEmpty ? "no faults" : parts.joined(separator: ", ")
    }
}

/// Thrown at a crashed actor's scheduling points; a worker's loop catches it and restarts.
public struct SimulatedCrash: Error, Sendable {}
