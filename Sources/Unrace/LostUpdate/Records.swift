import Foundation
import Synchronization
import UnraceCore

/// A value with the version it was read at.
public struct Versioned<Value: Sendable>: Sendable {
    /// The value.
    public var value: Value
    /// The version: 1 when created, one more on every write.
    public var version: Int64

    /// A value at a version.
    public init(value: Value, version: Int64) {
        self.value = value
        self.version = version
    }
}

extension Versioned: Equatable where Value: Equatable {}

/// How ``Records/update(_:as:_:)`` retries after a version conflict: a bounded number of
/// attempts, with jittered exponential backoff drawn from a seeded generator so a test
/// reproduces its timing decisions.
public struct RetryPolicy: Sendable {
    /// The most attempts accepted: 1,000.
    public static var attemptsMaximum: Int { 1_000 }

    /// Attempts, the first included. Default 16; 1 to ``attemptsMaximum``.
    public var attempts = 16
    /// The first backoff. Default 1 ms.
    public var initialBackoff: Duration = .milliseconds(1)
    /// The longest backoff. Default 100 ms.
    public var maximumBackoff: Duration = .milliseconds(100)
    /// The seed of the jitter. Default: a random seed per policy, so processes that collide do
    /// not back off in step; set it to reproduce a run's timing decisions.
    public var seed: UInt64 = Jitter.freshSeed()

    /// The all-defaults policy.
    public init() {}
}

/// Versioned records: the fix for the lost update between a read and a write.
///
/// Two services read balance 100; one writes 60, the other 20; no conflict is detected. With
/// `Records`, every write names the version it read, and a write on a stale version is a
/// ``UnraceError/Code/versionConflict``, never a silent overwrite.
public struct Records<S: Store>: Sendable {
    /// The store the records live in.
    public let store: S
    /// The collection (a table of records) this instance reads and writes.
    public let collection: String
    /// How ``update(_:as:_:)`` retries.
    public let retry: RetryPolicy
    let clock: any WallClock
    private let jitter: Jitter
    let telemetry: Telemetry

    /// Creates the API over one collection.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a collection that breaks
    ///   ``NameRule/collection``, ``UnraceError/Code/invalidConfiguration`` for a retry policy out of bounds.
    public init(
        store: S,
        collection: String,
        retry: RetryPolicy = .init(),
        clock: any WallClock = SystemWallClock(),
        observability: Observability = .init()
    ) throws {
        let collection = try NameRule.collection.validate(collection)
        guard (1...RetryPolicy.attemptsMaximum).contains(retry.attempts), retry.initialBackoff >= .zero,
            retry.maximumBackoff >= retry.initialBackoff, retry.maximumBackoff <= .seconds(60)
        else {
            throw UnraceError(.invalidConfiguration, "retry needs 1 to 1000 attempts and backoffs from 0 to 60 s, initial <= maximum")
        }
        self.store = store
        self.collection = collection
        self.retry = retry
        self.clock = clock
        self.jitter = Jitter(seed: retry.seed)
        self.telemetry = Telemetry(api: "records", store: store, observability: observability)
    }

    private func info(_ name: StaticString, _ id: String, isReadOnly: Bool = false) -> StepInfo {
        StepInfo(name, "\(collection)/\(id)", clock: clock, isReadOnly: isReadOnly)
    }

    /// Reads a record and the version it is at.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for an id that breaks ``NameRule/recordID``;
    ///   ``UnraceError/Code/outcomeDecodingFailed`` if the value is not a `T`.
    public func read<T: Codable & Sendable>(_ id: String, as type: T.Type = T.self) async throws -> Versioned<T>? {
        let id = try NameRule.recordID.validate(id)
        let collection = collection
        let stored = try await telemetry.step(store, info("read", id, isReadOnly: true)) { context in
            let record = try await context.rows.record(collection: collection, id: id, lock: false)
            context.note("→ version \(record?.version ?? 0)")
            return record
        }
        guard let stored else { return nil }
        return Versioned(value: try OutcomeCoding.decode(T.self, from: stored.value), version: stored.version)
    }

    /// Creates a record at version 1 unless one exists. The check and the insert are one step
    /// under the record's key, so two creators racing cannot both succeed.
    /// - Returns: `nil` if created, or the version of the record that already existed.
    @discardableResult
    public func create<T: Codable & Sendable>(_ id: String, _ value: T) async throws -> Int64? {
        let id = try NameRule.recordID.validate(id)
        let bytes = try OutcomeCoding.encode(value)
        let collection = collection
        return try await telemetry.step(store, info("create", id)) { context in
            if let existing = try await context.rows.record(collection: collection, id: id, lock: true) { return existing.version }
            let record = StoredRecord(collection: collection, id: id, value: bytes, version: 1, updatedAt: try await context.rows.now())
            try await context.rows.saveRecord(record, isNew: true)
            return nil
        }
    }

    /// Writes `value` if the record is still at `expectedVersion` (compare-and-swap, decided on
    /// the locked row).
    /// - Returns: the new version.
    /// - Throws: ``UnraceError/Code/versionConflict`` (nothing written) when another write got
    ///   there first, or the record is at the largest version (versions never wrap);
    ///   ``UnraceError/Code/notFound`` when there is no such record;
    ///   ``UnraceError/Code/invalidArgument`` for an `expectedVersion` below 1, an id that breaks
    ///   ``NameRule/recordID`` or a value over ``OperationsConfiguration/outcomeByteCountMaximum``
    ///   bytes as JSON (nothing written).
    @discardableResult
    public func write<T: Codable & Sendable>(_ id: String, _ value: T, expectedVersion: Int64) async throws -> Int64 {
        let id = try NameRule.recordID.validate(id)
        guard expectedVersion >= 1 else { throw UnraceError(.invalidArgument, "a version is 1 or more") }
        return try await conditionalWrite(id, try OutcomeCoding.encode(value), expectedVersion: expectedVersion)
    }

    /// Writes `value` over the record at whatever version it now has, if it exists: the write
    /// `If-Match: *` asks for (the resource exists), decided on the locked row — not a
    /// compare-and-swap on a version read earlier, so a concurrent writer never makes it fail.
    /// - Returns: the new version.
    /// - Throws: ``UnraceError/Code/notFound`` (nothing written) when there is no such record;
    ///   ``UnraceError/Code/versionConflict`` only at the largest version (versions never wrap).
    @discardableResult
    public func replace<T: Codable & Sendable>(_ id: String, _ value: T) async throws -> Int64 {
        let id = try NameRule.recordID.validate(id)
        return try await conditionalWrite(id, try OutcomeCoding.encode(value), expectedVersion: nil)
    }

    private func conditionalWrite(_ id: String, _ bytes: [UInt8], expectedVersion: Int64?) async throws -> Int64 {
        let collection = collection
        let subject = expectedVersion.map { "\(id) if version \($0)" } ?? "\(id) at any version"
        let decision = try await telemetry.step(store, info(expectedVersion == nil ? "replace" : "write", subject)) { context in
            let current = try await context.rows.record(collection: collection, id: id, lock: true)
            var (decision, next) = RecordRule.write(
                current,
                value: bytes,
                expectedVersion: expectedVersion,
                now: try await context.rows.now()
            )
            if context.disabledGuards.contains(.versionCheck), case .conflict = decision, var forced = current {
                forced.value = bytes
                forced.version += 1
                (decision, next) = (.written(version: forced.version), forced)
            }
            if let next { try await context.rows.saveRecord(next, isNew: false) }
            switch decision {
            case .written(let version): context.note("→ version \(version)")
            case .conflict: context.note("✗ version conflict")
            case .notFound: context.note("✗ not found")
            }
            return decision
        }
        switch decision {
        case .written: telemetry.count("unrace_record_writes_total", [("result", "written")])
        case .conflict: telemetry.count("unrace_record_writes_total", [("result", "conflict")])
        case .notFound: telemetry.count("unrace_record_writes_total", [("result", "not_found")])
        }
        switch decision {
        case .written(let version):
            return version
        case .notFound:
            throw UnraceError(.notFound, "there is no such record")
        case .conflict(let current):
            throw UnraceError(
                .versionConflict,
                "the record changed since it was read; re-read and decide again",
                detail: "expected version \(expectedVersion.map(String.init) ?? "any"), current \(current)"
            )
        }
    }

    /// Re-reads, transforms and writes a record until the write lands on the version it read,
    /// at most ``RetryPolicy/attempts`` times, backing off with seeded jitter between attempts.
    ///
    /// `transform` may run more than once; it must only compute (throw to give up).
    /// - Throws: ``UnraceError/Code/notFound``; ``UnraceError/Code/retryLimitReached`` after the
    ///   last conflicting attempt; ``UnraceError/Code/versionConflict`` at once for a record at the
    ///   largest version (versions never wrap); ``UnraceError/Code/outcomeDecodingFailed`` when the
    ///   stored value is not a `T`; ``UnraceError/Code/invalidArgument`` for a value over
    ///   ``OperationsConfiguration/outcomeByteCountMaximum`` bytes as JSON; or what `transform`
    ///   throws (nothing is written then).
    @discardableResult
    public func update<T: Codable & Sendable>(
        _ id: String,
        as type: T.Type = T.self,
        _ transform: (inout T) throws -> Void
    ) async throws -> Versioned<T> {
        // Normalised before its log lines, so they name one key however the id was spelled.
        let id = try NameRule.recordID.validate(id)
        return try await telemetry.span("update") { _ in try await update(id, transform) }
    }

    private func update<T: Codable & Sendable>(_ id: String, _ transform: (inout T) throws -> Void) async throws -> Versioned<T> {
        var backoff = retry.initialBackoff
        for attempt in 1...retry.attempts {
            guard let current = try await read(id, as: T.self) else {
                throw UnraceError(.notFound, "there is no such record")
            }
            var value = current.value
            try transform(&value)
            do {
                let version = try await write(id, value, expectedVersion: current.version)
                if attempt > 1 {
                    // One line per update that had to retry, not one per retry: under contention
                    // a line per attempt would drown the log.
                    telemetry.logger.notice(
                        "record update landed after retrying version conflicts",
                        metadata: telemetry.keyMetadata(scope: collection, key: id).merging(["attempts": "\(attempt)"]) { $1 }
                    )
                }
                return Versioned(value: value, version: version)
            } catch let error as UnraceError where error.code == .versionConflict {
                // At the largest version every write conflicts (versions never wrap): no retry lands.
                if current.version == .max { throw error }
                guard attempt < retry.attempts else { break }
                telemetry.count("unrace_record_retries_total")
                telemetry.logger.debug(
                    "record changed between read and write; retrying",
                    metadata: telemetry.keyMetadata(scope: collection, key: id).merging(["attempt": "\(attempt)"]) { $1 }
                )
                let pause = jitter.state.withLock { generator in
                    Duration.milliseconds(generator.int(in: 0...Int(max(1, backoff.wholeMilliseconds))))
                }
                try await clock.sleep(for: pause)
                backoff = min(backoff * 2, retry.maximumBackoff)
            }
        }
        telemetry.logger.warning(
            "record update gave up after its retry limit",
            metadata: telemetry.keyMetadata(scope: collection, key: id).merging(["attempts": "\(retry.attempts)"]) { $1 }
        )
        throw UnraceError(.retryLimitReached, "the record kept changing between read and write", detail: "\(retry.attempts) attempts")
    }
}

/// The seeded generator behind retry jitter, shared by copies of one ``Records``.
final class Jitter: Sendable {
    let state: Mutex<SeededGenerator>
    init(seed: UInt64) { state = Mutex(SeededGenerator(seed: seed)) }

    /// One system random number per process, then a count of the seeds handed out.
    private static let base = UInt64.random(in: .min ... .max)
    private static let handedOut = Atomic<UInt64>(0)

    /// A random seed without a system call each: the process's random base advanced by one
    /// SplitMix64 step per seed, so every seed differs, and two processes' seeds differ too.
    static func freshSeed() -> UInt64 {
        let count = handedOut.wrappingAdd(1, ordering: .relaxed).newValue
        var generator = SeededGenerator(seed: base &+ count &* 0x9E37_79B9_7F4A_7C15)
        return generator.next()
    }
}
