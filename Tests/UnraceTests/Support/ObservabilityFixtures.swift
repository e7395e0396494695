import CoreMetrics
import Foundation
import InMemoryTracing
import Logging
import MetricsTestKit
import Synchronization
import Testing
import Tracing
import UnraceCore

@testable import Unrace

/// A memory store that notes, for each step, whether a service context was set around it. It
/// names no backend, so it reports its type name.
final class ContextRecordingStore: Store, Sendable {
    let inner: MemoryStore
    let seen = Mutex<[Bool]>([])
    init(inner: MemoryStore) { self.inner = inner }
    func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<MemoryTransaction>) async throws -> T) async throws -> T {
        seen.withLock { $0.append(ServiceContext.current != nil) }
        return try await inner.step(step, body)
    }
    func withTransaction<T: Sendable>(_ body: (MemoryTransaction) async throws -> T) async throws -> T {
        try await inner.withTransaction(body)
    }
}

/// A store that, when told to, bumps a record's version in a step of its own just before the
/// next `write` step: a concurrent writer, placed exactly between a read and a write.
final class InterferingStore<Inner: Store>: Store, Sendable {
    typealias Transaction = Inner.Transaction
    let inner: Inner
    let interfere = Mutex(false)

    init(inner: Inner) { self.inner = inner }

    /// A wrapper names the store it wraps (else a store is named by its type).
    var backendName: String { inner.backendName }

    /// A wrapper answers as the store it wraps.
    var runsStepsConcurrently: Bool { inner.runsStepsConcurrently }

    func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<Inner.Transaction>) async throws -> T) async throws -> T {
        let now =
            step.name.description == "write"
            && interfere.withLock { armed in
                defer { armed = false }
                return armed
            }
        if now {
            let subject = step.subject
            try await inner.step(StepInfo("interfere", subject, clock: step.clock)) { context in
                let parts = subject.split(separator: "/", maxSplits: 1)
                let id = String(parts[1].split(separator: " ")[0])
                guard var record = try await context.rows.record(collection: String(parts[0]), id: id, lock: true) else { return }
                record.version += 1
                try await context.rows.saveRecord(record, isNew: false)
            }
        }
        return try await inner.step(step, body)
    }

    func withTransaction<T: Sendable>(_ body: (Inner.Transaction) async throws -> T) async throws -> T {
        try await inner.withTransaction(body)
    }
}

struct TestFailure: Error {}

extension Backend {
    /// The `store` dimension this backend reports under.
    var label: String {
        switch self {
        case .memory, .sqlite, .postgres: rawValue
        case .fluentSQLite: "fluent-sqlite"
        case .fluentPostgres: "fluent-postgres"
        }
    }
}

/// Collects log entries in memory.
final class LogRecorder: Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
        var description: String { "\(level) \(message) \(metadata)" }
    }

    private let storage = Mutex<[Entry]>([])
    var entries: [Entry] { storage.withLock { $0 } }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(recorder: self) }
    }

    func append(_ entry: Entry) { storage.withLock { $0.append(entry) } }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            recorder.append(
                Entry(level: event.level, message: "\(event.message)", metadata: metadata.merging(event.metadata ?? [:]) { $1 })
            )
        }
    }
}
