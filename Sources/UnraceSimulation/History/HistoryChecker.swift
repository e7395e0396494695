public import Foundation
import UnraceCore

/// One line of a history: what a client asked, what the system must do, what it did, or what
/// the store holds. A history is JSON lines, one entry per line, told apart by `type`; the
/// format is documented in the History article, so you can feed the checker your own logs.
///
/// | `type` | fields | meaning |
/// |---|---|---|
/// | `request` | `operation`, `status`, `changes`? | a client's request and the final answer it got; a 2xx status means it was accepted, so its `operation` must take effect exactly once |
/// | `expect` | `operation`, `changes`? | an operation the system must perform exactly once (work an accepted request implies) |
/// | `effect` | `operation`, `stream`?, `sequence`?, `position`?, `actor`? | something the system did, as the store recorded it; `position` orders effects (give it to every effect or to none: without it, the line number stands in) |
/// | `account` | `name`, `initial`, `final` | a quantity the store holds (stock, a balance): where it started and where it ended |
///
/// `changes` maps account names to how much an operation moves them (`{"stock:widget": -2}`).
/// Any other `type` (deliveries, faults, notes) is counted and otherwise ignored.
public struct HistoryEntry: Sendable, Hashable, Codable {
    /// The kind of entry: `request`, `expect`, `effect`, `account`, or anything else (ignored).
    public var type: String
    /// The operation a request, expectation or effect is about (`capture:order-7`).
    public var operation: String?
    /// A request's final HTTP status (or 0 for none): 2xx is accepted.
    public var status: Int?
    /// How much an accepted operation moves each account.
    public var changes: [String: Int64]?
    /// The stream an effect belongs to, for ordering.
    public var stream: String?
    /// An effect's sequence on its stream (1, 2, …).
    public var sequence: Int64?
    /// The order the store recorded effects in. Give it to every effect or to none: an effect
    /// without one is placed at its line number.
    public var position: Int64?
    /// Who did or asked it (a client, a worker), for the report.
    public var actor: String?
    /// An account's name.
    public var name: String?
    /// An account's starting value.
    public var initial: Int64?
    /// An account's final value in the store.
    public var final: Int64?

    /// An entry.
    public init(
        type: String,
        operation: String? = nil,
        status: Int? = nil,
        changes: [String: Int64]? = nil,
        stream: String? = nil,
        sequence: Int64? = nil,
        position: Int64? = nil,
        actor: String? = nil,
        name: String? = nil,
        initial: Int64? = nil,
        final: Int64? = nil
    ) {
        self.type = type
        self.operation = operation
        self.status = status
        self.changes = changes
        self.stream = stream
        self.sequence = sequence
        self.position = position
        self.actor = actor
        self.name = name
        self.initial = initial
        self.final = final
    }

    /// A request entry.
    public static func request(_ operation: String, status: Int, changes: [String: Int64] = [:], actor: String? = nil) -> HistoryEntry {
        HistoryEntry(type: "request", operation: operation, status: status, changes: changes.isEmpty ? nil : changes, actor: actor)
    }

    /// An expectation entry.
    public static func expect(_ operation: String, changes: [String: Int64] = [:]) -> HistoryEntry {
        HistoryEntry(type: "expect", operation: operation, changes: changes.isEmpty ? nil : changes)
    }

    /// An effect entry.
    public static func effect(
        _ operation: String,
        stream: String? = nil,
        sequence: Int64? = nil,
        position: Int64? = nil,
        actor: String? = nil
    ) -> HistoryEntry {
        HistoryEntry(type: "effect", operation: operation, stream: stream, sequence: sequence, position: position, actor: actor)
    }

    /// An account entry.
    public static func account(_ name: String, initial: Int64, final: Int64) -> HistoryEntry {
        HistoryEntry(type: "account", name: name, initial: initial, final: final)
    }

    /// The entry as one JSON line (keys sorted, no newline).
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}

/// What the checker found, in the seed's terms.
public struct HistoryReport: Sendable, Hashable, Codable {
    /// An operation that took effect more than once: double execution.
    public struct Duplicate: Sendable, Hashable, Codable {
        /// The operation.
        public var operation: String
        /// How many times it took effect.
        public var count: Int
        /// Who did it, in order.
        public var actors: [String]

        /// A duplicate.
        public init(operation: String, count: Int, actors: [String]) {
            self.operation = operation
            self.count = count
            self.actors = actors
        }
    }

    /// An account whose final value is not its start plus the accepted operations' changes:
    /// a lost update (less moved than accepted) or a double effect (more).
    public struct Imbalance: Sendable, Hashable, Codable {
        /// The account.
        public var account: String
        /// Start plus the accepted operations' changes (clamped to Int64's range; see
        /// ``exactExpected``).
        public var expected: Int64
        /// What the store holds.
        public var final: Int64
        /// The expectation in decimal when it lies beyond Int64's range (`expected` is then
        /// clamped); `nil` otherwise.
        public var exactExpected: String?

        /// An imbalance.
        public init(account: String, expected: Int64, final: Int64, exactExpected: String? = nil) {
            self.account = account
            self.expected = expected
            self.final = final
            self.exactExpected = exactExpected
        }
    }

    /// An effect applied before its predecessor on the same stream.
    public struct OutOfOrder: Sendable, Hashable, Codable {
        /// The stream.
        public var stream: String
        /// The effect's operation.
        public var operation: String
        /// Its sequence.
        public var sequence: Int64
        /// The stream's sequences applied before it, in order: the last ``appliedBeforeMaximum``
        /// of them at most.
        public var appliedBefore: [Int64]
        /// How many of the stream's effects were applied before it (``appliedBefore`` holds the last
        /// of them).
        public var appliedBeforeCount: Int

        /// The most sequences ``appliedBefore`` holds: 16. Bounded, so that a report grows with its
        /// history, not with its square (every effect of a long stream out of order, say).
        public static var appliedBeforeMaximum: Int { 16 }

        /// An out-of-order application; `appliedBeforeCount` defaults to `appliedBefore`'s count.
        public init(stream: String, operation: String, sequence: Int64, appliedBefore: [Int64], appliedBeforeCount: Int? = nil) {
            self.stream = stream
            self.operation = operation
            self.sequence = sequence
            self.appliedBefore = appliedBefore
            self.appliedBeforeCount = appliedBeforeCount ?? appliedBefore.count
        }
    }

    /// How many entries of each type the history had.
    public var entries: [String: Int]
    /// How many operations had to take effect (accepted requests and expectations).
    public var expectedOperations: Int
    /// Operations that took effect more than once.
    public var duplicateEffects: [Duplicate]
    /// Expected operations that never took effect.
    public var lostOperations: [String]
    /// Effects of operations nothing accepted or expected (checked only when the history has
    /// expectations): a request executed again under another id, for example.
    public var unexpectedEffects: [String]
    /// Accounts that do not balance.
    public var imbalances: [Imbalance]
    /// Effects applied out of order on their stream.
    public var outOfOrder: [OutOfOrder]

    /// How many anomalies of all kinds.
    public var anomalyCount: Int {
        duplicateEffects.count + lostOperations.count + unexpectedEffects.count + imbalances.count + outOfOrder.count
    }

    /// Whether the history shows no anomaly.
    public var isClean: Bool { anomalyCount == 0 }

    /// The report as text: one line per class, then up to `examples` offending entries each.
    public func text(examples: Int = 5) -> String {
        // The history file chose the names: each stays in its own line, with no escape sequences.
        var lines = [
            "history: " + entries.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key.terminalSafeLine)" }.joined(separator: ", ")
        ]
        lines.append("expected operations: \(expectedOperations)")
        func section<T>(_ title: String, _ items: [T], _ describe: (T) -> String) {
            lines.append("\(title): \(items.count)")
            let shown = max(0, examples)
            for item in items.prefix(shown) { lines.append("  " + describe(item).terminalSafeLine) }
            if items.count > shown { lines.append("  … and \(items.count - shown) more") }
        }
        section("duplicate effects (double execution)", duplicateEffects) {
            "\($0.operation) took effect \($0.count) times (\($0.actors.joined(separator: ", ")))"
        }
        section("lost operations", lostOperations) { "\($0) was accepted but never took effect" }
        section("unexpected effects", unexpectedEffects) { "\($0) took effect but nothing accepted it" }
        section("accounts not conserved (lost updates, double effects)", imbalances) {
            // In 128 bits: two Int64 values can lie further apart than Int64 reaches.
            let expected = $0.exactExpected.flatMap { Int128($0) } ?? Int128($0.expected)
            let (difference, overflow) = Int128($0.final).subtractingReportingOverflow(expected)
            let shown = overflow ? "" : " (\(difference > 0 ? "+" : "")\(difference))"
            return "\($0.account): expected \(expected), store holds \($0.final)\(shown)"
        }
        section("out-of-order applications", outOfOrder) {
            "\($0.operation) (sequence \($0.sequence) of \($0.stream)) applied after [\($0.appliedBeforeCount > $0.appliedBefore.count ? "…, " : "")\($0.appliedBefore.map(String.init).joined(separator: ", "))]"
        }
        lines.append(isClean ? "no anomalies" : "\(anomalyCount) anomalies")
        return lines.joined(separator: "\n")
    }
}

/// Checks a history for the anomalies the seed names: double execution (an operation's effect
/// more than once), lost operations, lost updates (accounts that do not balance against the
/// accepted operations), and out-of-order application per stream.
///
/// The fault run (`unrace chaos`), `unrace check` and tests use it; it needs nothing but the
/// entries, so it works on any system's logs written in the ``HistoryEntry`` format.
public enum HistoryChecker {
    /// The longest line read: 64 KiB.
    public static var lineByteCountMaximum: Int { 65_536 }
    /// The largest history `unrace check` reads: 64 MiB (a 10,000-order fault run writes about
    /// 6 MiB), so a huge or endless input (`/dev/zero`) is refused instead of read whole.
    public static var historyByteCountMaximum: Int { 64 << 20 }

    /// Reads JSON lines (blank lines are skipped).
    /// - Throws: ``UnraceError/Code/invalidArgument`` naming the first bad line.
    public static func parse(_ data: Data) throws -> [HistoryEntry] {
        let decoder = JSONDecoder()
        var entries: [HistoryEntry] = []
        var number = 0
        // Line by line, without a copy of every line first (a file of newlines would cost 16 bytes
        // and more per line).
        var start = data.startIndex
        while start <= data.endIndex {
            let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
            let line = data[start..<end]
            start = end + 1
            number += 1
            let trimmed = line.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            if trimmed.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard line.count <= lineByteCountMaximum else {
                throw UnraceError(.invalidArgument, "history line \(number) is longer than \(lineByteCountMaximum) bytes")
            }
            do {
                entries.append(try decoder.decode(HistoryEntry.self, from: Data(line)))
            } catch {
                // Only the four known types follow the schema: another type is ignored, whatever
                // its fields hold (a note's `status` may be text).
                guard let type = try? decoder.decode(TypeOnly.self, from: Data(line)).type else {
                    throw UnraceError(
                        .invalidArgument,
                        "history line \(number) is not a JSON object with a string \"type\"",
                        underlying: error
                    )
                }
                guard !knownTypes.contains(type) else {
                    throw UnraceError(
                        .invalidArgument,
                        "history line \(number): a field of this \(type) entry has the wrong type (see the History article)",
                        underlying: error
                    )
                }
                entries.append(HistoryEntry(type: type))
            }
            try validate(entries[entries.count - 1], line: number)
        }
        return entries
    }

    /// The types the checker reads; any other is counted and ignored.
    static let knownTypes: Set<String> = ["request", "expect", "effect", "account"]

    private struct TypeOnly: Decodable {
        var type: String
    }

    private static func validate(_ entry: HistoryEntry, line: Int) throws {
        func require(_ present: Bool, _ what: String) throws {
            guard present else { throw UnraceError(.invalidArgument, "history line \(line): a \(entry.type) entry needs \(what)") }
        }
        switch entry.type {
        case "request": try require(entry.operation != nil && entry.status != nil, "\"operation\" and \"status\"")
        case "expect", "effect": try require(entry.operation != nil, "\"operation\"")
        case "account": try require(entry.name != nil && entry.initial != nil && entry.final != nil, "\"name\", \"initial\" and \"final\"")
        default: break
        }
        if entry.type == "effect" {
            try require((entry.stream == nil) == (entry.sequence == nil), "both \"stream\" and \"sequence\", or neither")
        }
    }

    /// Checks a history.
    public static func check(_ entries: [HistoryEntry]) -> HistoryReport {
        var counts: [String: Int] = [:]
        var expected: [String: [String: Int64]] = [:]  // operation -> changes
        var effects: [(index: Int, entry: HistoryEntry)] = []
        var accounts: [String: (initial: Int64, final: Int64)] = [:]
        for (index, entry) in entries.enumerated() {
            counts[entry.type, default: 0] += 1
            // Entries built in code may lack fields `parse` requires: they are counted, not used.
            switch entry.type {
            case "request" where (200..<300).contains(entry.status ?? 0), "expect":
                // An operation accepted twice still moves its accounts once: the first entry that
                // names its changes decides them, in whatever order the lines come.
                if let operation = entry.operation, expected[operation]?.isEmpty ?? true {
                    expected[operation] = entry.changes ?? expected[operation] ?? [:]
                }
            case "effect" where entry.operation != nil: effects.append((index, entry))
            case "account":
                if let name = entry.name, let initial = entry.initial, let final = entry.final { accounts[name] = (initial, final) }
            default: break
            }
        }
        // Effects in the order the store recorded them.
        effects.sort { ($0.entry.position ?? Int64($0.index), $0.index) < ($1.entry.position ?? Int64($1.index), $1.index) }

        var byOperation: [String: [HistoryEntry]] = [:]
        for (_, effect) in effects { byOperation[effect.operation!, default: []].append(effect) }
        let duplicates = byOperation.filter { $0.value.count > 1 }
            .map { HistoryReport.Duplicate(operation: $0.key, count: $0.value.count, actors: $0.value.map { $0.actor ?? "?" }) }
            .sorted { $0.operation < $1.operation }
        let lost = expected.keys.filter { byOperation[$0] == nil }.sorted()
        let unexpected = expected.isEmpty ? [] : byOperation.keys.filter { expected[$0] == nil }.sorted()

        var imbalances: [HistoryReport.Imbalance] = []
        // In 128 bits: changes that add up past Int64 are an imbalance, never a wrapped match.
        var moved: [String: Int128] = [:]
        for changes in expected.values {
            for (name, change) in changes { moved[name, default: 0] += Int128(change) }
        }
        for (name, account) in accounts.sorted(by: { $0.key < $1.key }) {
            let should = Int128(account.initial) + (moved[name] ?? 0)
            guard should != Int128(account.final) else { continue }
            // Shown within Int64 (the report's type); the decision above was exact.
            let shown = Int64(clamping: should)
            let exact = Int128(shown) == should ? nil : String(should)
            imbalances.append(.init(account: name, expected: shown, final: account.final, exactExpected: exact))
        }

        // Per stream: the sequences applied (a set, so each effect is one lookup) and the last few,
        // for the report.
        var applied: [String: AppliedSequences] = [:]
        var outOfOrder: [HistoryReport.OutOfOrder] = []
        for (_, effect) in effects {
            guard let stream = effect.stream, let sequence = effect.sequence else { continue }
            if sequence > 1, applied[stream]?.all.contains(sequence - 1) != true {
                let earlier = applied[stream]
                outOfOrder.append(
                    .init(
                        stream: stream,
                        operation: effect.operation!,
                        sequence: sequence,
                        appliedBefore: earlier?.last ?? [],
                        appliedBeforeCount: earlier?.count ?? 0
                    )
                )
            }
            applied[stream, default: AppliedSequences()].add(sequence)
        }
        return HistoryReport(
            entries: counts,
            expectedOperations: expected.count,
            duplicateEffects: duplicates,
            lostOperations: lost,
            unexpectedEffects: unexpected,
            imbalances: imbalances,
            outOfOrder: outOfOrder
        )
    }
}
