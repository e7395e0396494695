import Foundation
import Testing

/// A running `unrace` process, for the tests that need several OS processes.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` and the pipes are set up before `run()` and only read afterwards;
    // `lines` is guarded by `lock`.
    let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    private let lock = NSLock()
    private var output = ""
    private var waiters: [(String, CheckedContinuation<Void, any Error>)] = []
    private var exited = false
    private var exitWaiters: [CheckedContinuation<Int32, Never>] = []

    /// The `unrace` executable that `swift build --build-tests` put beside the test bundle.
    static let binary: URL = {
        if let path = ProcessInfo.processInfo.environment["UNRACE_BINARY"] { return URL(fileURLWithPath: path) }
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../.build/debug").standardized,
        ]
        for folder in candidates {
            let url = folder.appendingPathComponent("unrace")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return candidates[2].appendingPathComponent("unrace")
    }()

    /// - Parameter captureErrors: read standard error into ``printed`` too (else it goes to the test's).
    init(_ arguments: [String], environment: [String: String] = [:], captureErrors: Bool = false) throws {
        process.executableURL = Self.binary
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = captureErrors ? stdout : FileHandle.standardError
        stdout.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.received(String(decoding: data, as: UTF8.self), eof: data.isEmpty)
        }
        process.terminationHandler = { [weak self] process in self?.terminated(process.terminationStatus) }
        // One launch at a time: Foundation's `Process.run()` crashed (SIGSEGV in its memmove)
        // once when tests launched children on several threads at the same moment.
        try Self.launches.withLock { try process.run() }
    }

    /// Serialises `Process.run()` across the test process.
    static let launches = NSLock()

    /// Everything the process printed so far.
    var printed: String { lock.withLock { output } }

    /// How long a test waits for a child before it kills it and fails: a hung child must not
    /// hang the suite.
    static let waitLimit: Duration = .seconds(180)

    /// Suspends until the process has printed `marker` (or fails if it exits first, or has not
    /// printed it within ``waitLimit``: then the child is killed).
    func waitFor(_ marker: String) async throws {
        let watchdog = killAfter(Self.waitLimit, unless: { [weak self] in self?.printed.contains(marker) ?? true })
        defer { watchdog.cancel() }
        try await withCheckedThrowingContinuation { continuation in
            let ready = lock.withLock { () -> Bool? in
                if output.contains(marker) { return true }
                if exited { return false }
                waiters.append((marker, continuation))
                return nil
            }
            switch ready {
            case true?: continuation.resume()
            case false?: continuation.resume(throwing: ChildError.exited(marker: marker))
            case nil: break
            }
        }
    }

    /// Suspends until the process exits, and returns its status. A child still running after
    /// ``waitLimit`` is killed (its status is then SIGKILL's).
    func exitStatus() async -> Int32 {
        let watchdog = killAfter(Self.waitLimit, unless: { [weak self] in self?.lock.withLock { self?.exited } ?? true })
        defer { watchdog.cancel() }
        return await withCheckedContinuation { continuation in
            let done = lock.withLock { () -> Bool in
                if exited { return true }
                exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume(returning: process.terminationStatus) }
        }
    }

    /// Kills the child after `limit` unless `done` says the wait is over; cancel it when the wait ends.
    private func killAfter(_ limit: Duration, unless done: @escaping @Sendable () -> Bool) -> Task<Void, Never> {
        let pid = process.processIdentifier
        return Task.detached {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled, !done() else { return }
            Issue.record("a child process did not finish within \(limit); killed")
            Foundation.kill(pid, SIGKILL)
        }
    }

    /// SIGKILL: the process gets no chance to clean up, like a crash or an OOM kill.
    func kill() async {
        Foundation.kill(process.processIdentifier, SIGKILL)
        _ = await exitStatus()
    }

    /// SIGTERM: asks the process to shut down gracefully; returns its exit status.
    func terminate() async -> Int32 {
        Foundation.kill(process.processIdentifier, SIGTERM)
        return await exitStatus()
    }

    /// The port of the `listening on http://host:port` line the child printed.
    var listeningPort: Int? {
        guard let line = printed.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://") }) else { return nil }
        return line.split(separator: ":").last.flatMap { Int($0) }
    }

    private func received(_ text: String, eof: Bool) {
        let ready = lock.withLock { () -> [CheckedContinuation<Void, any Error>] in
            output += text
            let (met, waiting) = (waiters.filter { output.contains($0.0) }, waiters.filter { !output.contains($0.0) })
            waiters = waiting
            return met.map(\.1)
        }
        ready.forEach { $0.resume() }
        if eof { stdout.fileHandleForReading.readabilityHandler = nil }
    }

    private func terminated(_ status: Int32) {
        // Drain what is left so late output is not lost.
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        let (pending, exits) = lock.withLock { () -> ([(String, CheckedContinuation<Void, any Error>)], [CheckedContinuation<Int32, Never>]) in
            output += String(decoding: rest, as: UTF8.self)
            exited = true
            let pending = waiters
            waiters = []
            let exits = exitWaiters
            exitWaiters = []
            return (pending, exits)
        }
        for (marker, continuation) in pending {
            if printed.contains(marker) { continuation.resume() } else { continuation.resume(throwing: ChildError.exited(marker: marker)) }
        }
        exits.forEach { $0.resume(returning: status) }
    }

    enum ChildError: Error { case exited(marker: String) }
}
