public import Logging
import Unrace

/// Which handler a run uses: the one people write first, or the one guarded by Unrace.
public enum HandlerKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// Check-then-act, read-modify-write, apply-as-delivered: the anomaly shows.
    case naive
    /// The same work through the Unrace API: the anomaly must never show.
    case guarded
}

/// A broken invariant: which one, and what the checker saw.
public struct Violation: Sendable, Hashable, Codable {
    /// The invariant's stable name, such as `effects-at-most-once`.
    public let invariant: String
    /// What was seen, for people.
    public let detail: String

    /// Creates a violation.
    public init(_ invariant: String, _ detail: String) {
        self.invariant = invariant
        self.detail = detail
    }
}

/// Settings the mistaken-fix sweep turns (see ``Sweep``): a longer visibility timeout, fewer
/// consumers, a random delay before processing. `nil` and 1× mean the scenario's own draw.
///
/// Each setting has a named range; a value set outside it is clamped into it (a run never traps
/// on a setting).
public struct Knobs: Sendable, Hashable {
    /// The range of ``visibilityMultiplier``: 1…8.
    public static let visibilityMultipliers: ClosedRange<Int64> = 1...8
    /// The range of ``consumers``: 1…64.
    public static let consumerCounts: ClosedRange<Int> = 1...64
    /// The range of ``addedDelay``, in virtual milliseconds: 0…60,000.
    public static let addedDelays: ClosedRange<Int64> = 0...60_000

    private var multiplier: Int64 = 1
    private var consumerCount: Int?
    private var delay: Int64 = 0

    /// The visibility timeout is multiplied by this (``visibilityMultipliers``, 1…8).
    public var visibilityMultiplier: Int64 {
        get { multiplier }
        set { multiplier = Self.clamp(newValue, Self.visibilityMultipliers) }
    }
    /// The number of consumers, instead of the drawn one (``consumerCounts``, 1…64).
    public var consumers: Int? {
        get { consumerCount }
        set { consumerCount = newValue.map { Self.clamp($0, Self.consumerCounts) } }
    }
    /// A consumer waits this many virtual milliseconds before handling a redelivered message,
    /// hoping the first delivery's handler has finished by then (``addedDelays``, 0…60,000).
    public var addedDelay: Int64 {
        get { delay }
        set { delay = Self.clamp(newValue, Self.addedDelays) }
    }

    /// The scenario's own settings.
    public init() {}

    private static func clamp<T: Comparable>(_ value: T, _ range: ClosedRange<T>) -> T {
        min(max(value, range.lowerBound), range.upperBound)
    }
}

/// One race, reproducible: a world to build, a naive and a guarded handler, and the
/// invariants that tell them apart.
public struct Scenario: Sendable {
    /// The scenario's name on the command line, such as `payment-capture`.
    public let name: String
    /// The race it reproduces: `double-execution`, `lost-update`, `out-of-order` or `zombie`.
    public let race: String
    /// One sentence for `--list` and the trace header.
    public let summary: String
    /// The invariants the checker applies.
    public let invariants: [String]
    let faults: Set<FaultKind>
    let pauseLength: Int64
    /// The largest clock skew the scenario's ``FaultKind/clockSkew`` draws.
    var skewLength: Int64 = 0
    let build: @Sendable (World, HandlerKind, Knobs) async throws -> Checker

    /// Checks the final state (and the recorded history) once every actor has finished.
    typealias Checker = @Sendable () async throws -> [Violation]

    /// Every scenario, in the order `--list` shows them.
    public static let all: [Scenario] =
        DoubleExecution.scenarios + LostUpdate.scenarios
        + [OutOfOrder.scenario, Zombie.scenario, ClockSkew.scenario]

    /// The scenario called `name`, if any.
    public static func named(_ name: String) -> Scenario? { all.first { $0.name == name } }
}

/// Simulator-side notes kept by actors during a run (what clients were told, which tokens were
/// granted): the history the invariants are checked against. Touched only by the running actor.
final class Notebook: @unchecked Sendable {
    var counts: [String: Int64] = [:]
    var sum: Int64 = 0
    var sequence = 0

    func next() -> Int {
        sequence += 1
        return sequence
    }
}

extension World {
    /// The `Operations` of a simulated holder (its clock, virtual by default; no logging), made
    /// once per holder.
    func operations(holder: String, lease: Duration, clock: SimulationClock? = nil) throws -> Operations<SimulatedStore> {
        if let made = holders[holder] { return made }
        var configuration = OperationsConfiguration()
        configuration.lease = lease
        configuration.holder = holder
        configuration.clock = clock ?? self.clock
        configuration.waitPollInterval = .milliseconds(20)
        let made = try Operations(store: store, configuration: configuration, observability: observability)
        holders[holder] = made
        return made
    }

    /// A logger that writes nothing.
    public static let silent = Logger(label: "unrace.simulation", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `request`, retrying up to 3 times when the store was unavailable before the step ran.
    func retryingTransient<T>(_ request: () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await request()
            } catch let error as UnraceError where error.code == .storeUnavailable && attempt < 3 {
                attempt += 1
            }
        }
    }
}

/// Thrown by a guarded handler that found another holder's lease running: give the message
/// back and try later.
struct RetryLater: Error, CustomStringConvertible {
    var description: String { "in progress elsewhere, retry later" }
}

extension Int64 {
    var bytes: [UInt8] { Array("\(self)".utf8) }
    init(bytes: [UInt8]?) { self = bytes.flatMap { Int64(String(decoding: $0, as: UTF8.self)) } ?? 0 }
}
