import Foundation
import Testing
import UnraceSpawn

/// How child processes are started (the fault run's and these tests' own): what a child gets
/// of this process, how its end is reported, and that an `unrace` child does not outlive a
/// parent that died.
@Suite("Child processes")
struct SpawnTests {
    @Test("a child gets standard input, output and error and none of this process's other descriptors")
    func onlyStandardDescriptors() async throws {
        // A descriptor without close-on-exec, at a number no other descriptor has.
        let plain = open("/dev/null", O_RDONLY)
        try #require(plain >= 0)
        let high = fcntl(plain, F_DUPFD, 900)
        close(plain)
        try #require(high >= 900)
        defer { close(high) }
        try #require(fcntl(high, F_GETFD) & FD_CLOEXEC == 0, "inherited by exec unless the spawn closes it")

        // The shell lists its own descriptors (the listing's own directory descriptor among them).
        let child = try ChildProcess(executable: "/bin/sh", ["-c", "ls /proc/self/fd"], errors: .captured)
        #expect(await child.exitStatus() == 0, "\(child.printed)")
        let listed = Set(child.printed.split(separator: "\n").compactMap { Int32($0) })
        #expect(!listed.contains(high), "descriptor \(high) reached the child: \(listed.sorted())")
        #expect(listed.isSuperset(of: [0, 1, 2]))
        #expect(listed.count <= 4, "only the standard three and ls's own directory: \(listed.sorted())")
    }

    @Test("an exit status and a killing signal are reported as such")
    func terminations() throws {
        let exited = try Spawn.start(["/bin/sh", "-c", "exit 7"])
        #expect(Spawn.wait(exited) == .exited(7))
        let killed = try Spawn.start(["/bin/sh", "-c", "kill -9 $$"])
        #expect(Spawn.wait(killed) == .signalled(SIGKILL))
        #expect(throws: SpawnError.self) { try Spawn.start(["/nonexistent/unrace-\(UUID())"]) }
    }

    @Test("an unrace child whose named parent has already gone exits at once, and says why")
    func namedParentAlreadyGone() async throws {
        // The parent that died before its child looked: a process that has exited and been reaped.
        let gone = try Spawn.start(["/bin/sh", "-c", "exit 0"])
        #expect(Spawn.wait(gone) == .exited(0))
        // Without the variable `simulate --list` prints the scenarios and exits 0.
        let child = try ChildProcess(["simulate", "--list"], environment: ["UNRACE_EXIT_WITH_PARENT": String(gone)], captureErrors: true)
        #expect(await child.exitStatus() == 1)
        #expect(child.printed == "unrace: exiting, its parent process \(gone) has gone (UNRACE_EXIT_WITH_PARENT)\n", "\(child.printed)")
    }

    @Test("an unrace child exits when its parent dies with UNRACE_EXIT_WITH_PARENT (1 or the parent's pid), and outlives it without")
    func childExitsWithItsParent() async throws {
        // "1": watch the parent found at start; "$$": the shell names itself; "0": off.
        for setting in ["1", "$$", "0"] {
            let watched = setting != "0"
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("orphan"))
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            // The parent: a shell that starts `unrace serve`, prints its pid, and waits to be killed.
            let script = #"UNRACE_EXIT_WITH_PARENT=\#(setting) "$UNRACE" serve --port 0 --file "$DB" & echo "pid=$!"; exec sleep 600"#
            let parent = try ChildProcess(
                executable: "/bin/sh",
                ["-c", script],
                environment: [
                    "UNRACE": ChildProcess.binary.path, "DB": folder.appendingPathComponent("shop.sqlite").path,
                ],
                errors: .discarded
            )
            // Whatever fails below, nothing is left running.
            defer { parent.sendKill() }
            try await parent.waitFor("listening on http://")
            let line = try #require(parent.printed.split(separator: "\n").first { $0.hasPrefix("pid=") })
            let orphan = try #require(pid_t(line.dropFirst(4)))
            let exited = try #require(ProcessExit(orphan), "pidfd_open")
            defer {
                exited.kill()
                exited.close()
            }
            await parent.kill()

            let gone = await exited.wait(upTo: .seconds(watched ? 30 : 2))
            if watched {
                #expect(gone, "unrace serve still runs after its parent died")
            } else {
                #expect(!gone, "without the variable the orphan keeps running (the hang this guards against)")
                exited.kill()
                #expect(await exited.wait(upTo: .seconds(30)))
            }
        }
    }
}

/// Waits for a process that is not this one's child to exit (`pidfd_open` and `poll`), on a
/// thread of its own.
private struct ProcessExit: Sendable {
    private let descriptor: Int32

    init?(_ pid: pid_t) {
        guard let open = Spawn.glibcFunction("pidfd_open", as: (@convention(c) (pid_t, UInt32) -> Int32).self) else { return nil }
        let descriptor = open(pid, 0)
        guard descriptor >= 0 else { return nil }
        self.descriptor = descriptor
    }

    /// Sends SIGKILL through the descriptor: never to a recycled pid.
    func kill() {
        let send = Spawn.glibcFunction(
            "pidfd_send_signal",
            as: (@convention(c) (Int32, Int32, UnsafeMutableRawPointer?, UInt32) -> Int32).self
        )
        _ = send?(descriptor, SIGKILL, nil, 0)
    }

    func close() { _ = Foundation.close(descriptor) }

    /// Whether it exited within `limit`.
    func wait(upTo limit: Duration) async -> Bool {
        let milliseconds = Int32(limit.components.seconds * 1_000)
        let descriptor = descriptor
        let ready = await withCheckedContinuation { continuation in
            Thread {
                var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                var result: Int32
                repeat { result = poll(&entry, 1, milliseconds) } while result == -1 && errno == EINTR
                continuation.resume(returning: result == 1)
            }.start()
        }
        return ready
    }
}
