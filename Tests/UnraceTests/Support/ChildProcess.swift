import Foundation
import Synchronization
import Testing
import UnraceSpawn

/// A running child process (`unrace`, or Chromium), for the tests that need several OS processes.
///
/// Started with `posix_spawn` (``Spawn``), not Foundation's `Process`, whose `run()` crashed the
/// test process now and then (SIGSEGV in its `memmove` while it lists `/proc/self/fd`). Its
/// output is read and its exit awaited on two threads of its own, never on the task pool.
/// `unrace` children get `UNRACE_EXIT_WITH_PARENT` set to this process's id: if the test process
/// dies they exit too, instead of holding `swift test`'s output open forever.
final class ChildProcess: Sendable {
    private struct State {
        var output: [UInt8] = []
        var waiters: [(String, CheckedContinuation<Void, any Error>)] = []
        var termination: Spawn.Termination?
        var reaped = false
        var exitedAt: ContinuousClock.Instant?
        var exitWaiters: [CheckedContinuation<Int32, Never>] = []
    }

    let pid: pid_t
    /// Just before the child was spawned.
    let startedAt: ContinuousClock.Instant
    private let killsGroup: Bool
    private let state = Mutex(State())
    /// The write end of the child's standard input, held open while it runs (closed on deinit).
    private let input: Int32

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

    /// Starts `unrace` with `arguments`.
    /// - Parameter captureErrors: read standard error into ``printed`` too (else it goes to the test's).
    convenience init(_ arguments: [String], environment: [String: String] = [:], captureErrors: Bool = false) throws {
        try self.init(
            executable: Self.binary.path,
            arguments,
            environment: environment.merging(["UNRACE_EXIT_WITH_PARENT": String(getpid())]) { given, _ in given },
            errors: captureErrors ? .captured : .inherited
        )
    }

    /// Where the child's standard error goes.
    enum Errors { case captured, inherited, discarded }

    /// Starts `executable` with `arguments`, this process's environment plus `environment`.
    /// - Parameter processGroup: start it in a process group of its own; ``kill()`` and the
    ///   watchdog then signal the whole group (Chromium's renderer and helpers too).
    init(executable: String, _ arguments: [String], environment: [String: String] = [:], errors: Errors, processGroup: Bool = false) throws
    {
        let output = try Spawn.makePipe()
        let input: (read: Int32, write: Int32)
        do { input = try Spawn.makePipe() } catch {
            close(output.read)
            close(output.write)
            throw error
        }
        defer {
            close(output.write)
            close(input.read)
        }
        let errorStream: Spawn.Stream =
            switch errors {
            case .captured: .descriptor(output.write)
            case .inherited: .descriptor(2)
            case .discarded: .null
            }
        startedAt = .now
        do {
            pid = try Spawn.start(
                [executable] + arguments,
                environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                input: .descriptor(input.read),
                output: .descriptor(output.write),
                errors: errorStream,
                newProcessGroup: processGroup
            )
        } catch {
            close(output.read)
            close(input.write)
            throw error
        }
        self.input = input.write
        killsGroup = processGroup
        let finishedReading = DispatchSemaphore(value: 0)
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(output.read, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                received(buffer[..<count])
            }
            close(output.read)
            finishedReading.signal()
        }.start()
        Thread { [self] in
            Spawn.waitWithoutReaping(pid)
            // What a group leader started and left running goes with it (Chromium's helpers would
            // hold the output pipe); the unreaped leader keeps the group id from being reused.
            if killsGroup { _ = Foundation.kill(-pid, SIGKILL) }
            // Marked reaped first (no signal is sent after this), reaped after, outside the lock.
            let exitedAt = ContinuousClock.now
            state.withLock {
                $0.reaped = true
                $0.exitedAt = exitedAt
            }
            let termination = Spawn.wait(pid)
            // What it printed last is read before anyone hears of the exit; a grandchild that
            // keeps the pipe open gets 5 s.
            _ = finishedReading.wait(timeout: .now() + 5)
            terminated(termination)
        }.start()
    }

    deinit { close(input) }

    /// From just before the spawn to the moment the waiter thread saw the exit (nil while it
    /// runs): no wait for the task pool in it.
    var lifetime: Duration? { state.withLock { $0.exitedAt.map { $0 - startedAt } } }

    /// Everything the process printed so far.
    var printed: String { state.withLock { String(decoding: $0.output, as: UTF8.self) } }

    /// How long a test waits for a child before it kills it and fails: a hung child must not
    /// hang the suite.
    static let waitLimit: Duration = .seconds(180)

    /// Suspends until the process has printed `marker` (or fails if it exits first, or has not
    /// printed it within ``waitLimit``: then the child is killed).
    func waitFor(_ marker: String) async throws {
        let watchdog = killAfter(Self.waitLimit, unless: { [weak self] in self?.printed.contains(marker) ?? true })
        defer { watchdog.cancel() }
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Bool? in
                if String(decoding: state.output, as: UTF8.self).contains(marker) { return true }
                if state.termination != nil { return false }
                state.waiters.append((marker, continuation))
                return nil
            }
            switch ready {
            case true?: continuation.resume()
            case false?: continuation.resume(throwing: ChildError.exited(marker: marker))
            case nil: break
            }
        }
    }

    /// Suspends until the process exits, and returns its status (the signal's number if a signal
    /// ended it). A child still running after `limit` is killed (its status is then SIGKILL's).
    func exitStatus(limit: Duration = waitLimit) async -> Int32 {
        let watchdog = killAfter(limit, unless: { [weak self] in self?.state.withLock { $0.reaped } ?? true })
        defer { watchdog.cancel() }
        return await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Int32? in
                if let termination = state.termination { return Self.status(termination) }
                state.exitWaiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Kills the child after `limit` unless `done` says the wait is over; cancel it when the wait ends.
    private func killAfter(_ limit: Duration, unless done: @escaping @Sendable () -> Bool) -> Task<Void, Never> {
        Task.detached { [weak self] in
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled, !done(), let self else { return }
            Issue.record("a child process did not finish within \(limit); killed")
            signal(SIGKILL)
        }
    }

    /// Sends `number` to the child (its process group if it has one), unless it has been reaped:
    /// never to a recycled pid.
    private func signal(_ number: Int32) {
        state.withLock { state in
            guard !state.reaped else { return }
            _ = Foundation.kill(killsGroup ? -pid : pid, number)
        }
    }

    /// Sends SIGKILL without waiting (clean-up in a `defer`); nothing once it has been reaped.
    func sendKill() { signal(SIGKILL) }

    /// SIGKILL: the process gets no chance to clean up, like a crash or an OOM kill.
    func kill() async {
        signal(SIGKILL)
        _ = await exitStatus()
    }

    /// SIGTERM, then waits at most `limit` for the process to exit: its status, or `nil` (and a
    /// SIGKILL, without recording an issue) when it was still running.
    func terminateWithin(_ limit: Duration) async -> Int32? {
        signal(SIGTERM)
        let exited = Mutex(false)
        let watchdog = Task.detached { [weak self] in
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled, !exited.withLock({ $0 }) else { return }
            self?.signal(SIGKILL)
        }
        defer { watchdog.cancel() }
        let status = await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Int32? in
                if let termination = state.termination { return Self.status(termination) }
                state.exitWaiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
        exited.withLock { $0 = true }
        return status == SIGKILL ? nil : status
    }

    /// SIGTERM: asks the process to shut down gracefully; returns its exit status.
    func terminate() async -> Int32 {
        signal(SIGTERM)
        return await exitStatus()
    }

    /// The port of the `listening on http://host:port` line the child printed.
    var listeningPort: Int? {
        guard let line = printed.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://") }) else { return nil }
        return line.split(separator: ":").last.flatMap { Int($0) }
    }

    private func received(_ bytes: ArraySlice<UInt8>) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.output += bytes
            guard !state.waiters.isEmpty else { return [] }
            let text = String(decoding: state.output, as: UTF8.self)
            let met = state.waiters.filter { text.contains($0.0) }
            state.waiters.removeAll { text.contains($0.0) }
            return met.map(\.1)
        }
        for continuation in ready { continuation.resume() }
    }

    private func terminated(_ termination: Spawn.Termination) {
        let (text, pending, exits) = state.withLock { state in
            state.termination = termination
            defer {
                state.waiters = []
                state.exitWaiters = []
            }
            return (String(decoding: state.output, as: UTF8.self), state.waiters, state.exitWaiters)
        }
        for (marker, continuation) in pending {
            if text.contains(marker) { continuation.resume() } else { continuation.resume(throwing: ChildError.exited(marker: marker)) }
        }
        for continuation in exits { continuation.resume(returning: Self.status(termination)) }
    }

    private static func status(_ termination: Spawn.Termination) -> Int32 {
        switch termination {
        case .exited(let status), .signalled(let status): status
        }
    }

    enum ChildError: Error { case exited(marker: String) }
}
