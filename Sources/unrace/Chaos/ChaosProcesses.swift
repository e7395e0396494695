import ArgumentParser
import Foundation
import Synchronization
import UnraceSpawn

/// The processes a fault run starts: one `unrace serve`, worker slots whose processes are killed
/// and replaced, and shell commands (the database restart). Everything it started is stopped by
/// ``stopAll()``.
///
/// Processes are started with ``Spawn`` (`posix_spawn`, `waitpid`) rather than with `Process`:
/// a database restart leaves a daemon behind, and `Process` learns of an exit through a
/// descriptor every descendant inherits. Children get no descriptor of this process but their
/// standard ones.
final class ChaosProcesses: Sendable {
    private struct State {
        var serve: pid_t?
        var provider: pid_t?
        var workers: [Int: (pid: pid_t, generation: Int)] = [:]
        var exited: Set<pid_t> = []
        var kills = 0
        var starts = 0
        var stopped = false
    }

    private let state = Mutex(State())
    let executable: String
    let log: FileHandle

    init(executable: URL, log: FileHandle) {
        self.executable = executable.path
        self.log = log
    }

    var kills: Int { state.withLock { $0.kills } }
    var workerStarts: Int { state.withLock { $0.starts } }

    /// Starts `unrace serve` and returns its port once it listens (within 60 s).
    func startServe(_ arguments: [String], output url: URL) async throws -> Int {
        try await startListening(arguments, output: url) { $0.serve = $1 }
    }

    /// Starts `unrace provider` (the external systems), never killed during the run: it is the
    /// world outside, whose log the history is built from.
    func startProvider(output url: URL) async throws -> Int {
        try await startListening(["provider", "--port", "0"], output: url) { $0.provider = $1 }
    }

    private func startListening(_ arguments: [String], output url: URL, _ note: (inout State, pid_t) -> Void) async throws -> Int {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let output = try FileHandle(forWritingTo: url)
        defer { try? output.close() }
        let pid = try Self.spawn([executable] + arguments, output: output.fileDescriptor, errors: log.fileDescriptor)
        state.withLock {
            $0.exited.remove(pid)
            note(&$0, pid)
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://") }),
                let port = line.split(separator: ":").last.flatMap({ Int($0) })
            {
                return port
            }
            guard isRunning(pid) else { throw ChaosFailure("unrace \(arguments[0]) exited; see processes.log") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ChaosFailure("unrace \(arguments[0]) did not listen within 60 s")
    }

    /// Starts the worker of `slot` (its next generation).
    func startWorker(slot: Int, arguments: (Int, Int) -> [String]) throws {
        try state.withLock { state in
            guard !state.stopped else { return }
            let generation = (state.workers[slot]?.generation ?? 0) + 1
            let pid = try Self.spawn([executable] + arguments(slot, generation), output: -1, errors: log.fileDescriptor)
            state.exited.remove(pid)  // a recycled pid is a new process
            state.workers[slot] = (pid, generation)
            state.starts += 1
        }
    }

    /// Whether `unrace serve` still runs.
    var isServing: Bool {
        guard let serve = state.withLock({ $0.serve }) else { return false }
        return isRunning(serve)
    }

    /// Whether a child still runs; reaps it once it has exited.
    private func isRunning(_ pid: pid_t) -> Bool {
        state.withLock { Self.isRunning(pid, &$0) }
    }

    private static func isRunning(_ pid: pid_t, _ state: inout State) -> Bool {
        if state.exited.contains(pid) { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == 0 { return true }
        state.exited.insert(pid)
        return false
    }

    /// Replaces workers that died, until cancelled. A worker that cannot start (the database is
    /// restarting) exits and is started again on a later round.
    func supervise(arguments: @escaping @Sendable (Int, Int) -> [String]) async {
        while !Task.isCancelled {
            let workers = state.withLock { $0.workers }
            for (slot, worker) in workers.sorted(by: { $0.key < $1.key }) where !isRunning(worker.pid) {
                try? startWorker(slot: slot, arguments: arguments)
            }
            guard (try? await Task.sleep(for: .milliseconds(25))) != nil else { return }
        }
    }

    /// SIGKILLs a random running worker every `interval`, until cancelled.
    func killRandomly(every interval: Duration) async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: interval)) != nil else { return }
            // Chosen and killed under the lock, before anything can reap it: never a recycled pid.
            state.withLock { state in
                let running = state.workers.values.map(\.pid).filter { Self.isRunning($0, &state) }
                guard let victim = running.randomElement() else { return }
                kill(victim, SIGKILL)
                state.kills += 1
            }
        }
    }

    /// Runs a shell command and waits for it (on a thread of its own, not the task pool);
    /// `true` if it exited 0. Its output goes to the run's log.
    func runShell(_ command: String) async -> Bool {
        log.write(Data("chaos: running \(command)\n".utf8))
        let started = ContinuousClock.now
        let descriptor = log.fileDescriptor
        let status: Int32 = await withCheckedContinuation { continuation in
            Thread {
                guard let pid = try? Self.spawn(["/bin/sh", "-c", command], output: descriptor, errors: descriptor) else {
                    return continuation.resume(returning: -1)
                }
                continuation.resume(returning: Self.wait(pid))
            }.start()
        }
        log.write(Data("chaos: exit status \(status) after \(ContinuousClock.now - started)\n".utf8))
        return status == 0
    }

    /// Stops every process this run started: workers by SIGKILL, the server by SIGTERM (then
    /// SIGKILL after 5 s); waits for each to exit. Safe to call more than once.
    /// Sends `unrace serve` SIGTERM and waits up to `limit` for it to exit.
    /// - Returns: the seconds it took, or `nil` if it was still running (then it is SIGKILLed).
    func stopServe(within limit: Duration) -> Double? {
        guard let serve = state.withLock({ $0.serve }), isRunning(serve) else { return nil }
        let started = ContinuousClock.now
        kill(serve, SIGTERM)
        while isRunning(serve), ContinuousClock.now - started < limit { usleep(10_000) }
        guard !isRunning(serve) else {
            kill(serve, SIGKILL)
            _ = Self.wait(serve)
            return nil
        }
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    func stopAll() {
        let (serve, workers) = state.withLock { state -> (pid_t?, [pid_t]) in
            state.stopped = true
            defer {
                state.serve = nil
                state.provider = nil
                state.workers = [:]
            }
            return (state.serve, state.workers.values.map(\.pid) + (state.provider.map { [$0] } ?? []))
        }
        for pid in workers where isRunning(pid) {
            kill(pid, SIGKILL)
            _ = Self.wait(pid)
        }
        guard let serve, isRunning(serve) else { return }
        kill(serve, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while isRunning(serve), Date() < deadline { usleep(10_000) }
        if isRunning(serve) {
            kill(serve, SIGKILL)
            _ = Self.wait(serve)
        }
    }

    /// On SIGINT or SIGTERM: stops every process this run started, then exits (130 or 143).
    func stopOnSignals() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { [self] in
                stopAll()
                exit(128 + number)
            }
            source.resume()
            return source
        }
    }

    // MARK: Spawning

    /// Starts `arguments` (a path, then its arguments) with standard input from /dev/null,
    /// `output` (or /dev/null for -1) and `errors` as standard output and error, and none of
    /// this process's other descriptors.
    static func spawn(_ arguments: [String], output: Int32, errors: Int32) throws -> pid_t {
        do {
            return try Spawn.start(arguments, output: output >= 0 ? .descriptor(output) : .null, errors: .descriptor(errors))
        } catch {
            throw ChaosFailure(error.description)
        }
    }

    /// Waits for a child: its exit status, or -1 when it was killed by a signal.
    static func wait(_ pid: pid_t) -> Int32 {
        guard case .exited(let status) = Spawn.wait(pid) else { return -1 }
        return status
    }
}
