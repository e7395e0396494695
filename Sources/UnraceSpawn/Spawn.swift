#if canImport(Glibc)
package import Glibc
#elseif canImport(Musl)
package import Musl
#elseif canImport(Darwin)
package import Darwin
#endif

/// Starts child processes with `posix_spawn` and waits for them with `waitpid`: what the fault
/// run (`unrace chaos`) and the multi-process tests use instead of Foundation's `Process`.
///
/// Why not `Process`: on Linux its `run()` reads past the end of a `dirent` while it lists
/// `/proc/self/fd`, and crashed the test process with SIGSEGV in `memmove` (seen in CI and here,
/// about once in three full runs); it also learns of an exit through a socket that every
/// descendant inherits. A child started here gets standard input, output and error and no other
/// descriptor of this process (with glibc 2.34 or later, which closes the rest in the child;
/// elsewhere every other descriptor is marked close-on-exec first, which a descriptor another
/// thread opens meanwhile can escape), an empty signal mask, and default handling of SIGINT, SIGTERM,
/// SIGPIPE, SIGCHLD, SIGQUIT and SIGHUP whatever this process does with them.
package enum Spawn {
    /// How a child ended.
    package enum Termination: Equatable, Sendable {
        /// It exited with this status.
        case exited(Int32)
        /// A signal with this number ended it.
        case signalled(Int32)
    }

    /// Where a child's standard stream goes.
    package enum Stream: Sendable {
        /// `/dev/null`.
        case null
        /// This descriptor of the parent (duplicated onto the stream; the parent keeps its own).
        case descriptor(Int32)
    }

    /// Starts `arguments[0]` (a path; no `PATH` search) with `arguments` as its argument vector.
    /// - Parameters:
    ///   - environment: the child's whole environment; `nil` passes this process's.
    ///   - newProcessGroup: start the child in a process group of its own (its pid), so that
    ///     `kill(-pid, …)` reaches what it starts too.
    /// - Returns: the child's pid; wait for it with ``wait(_:)`` (or `waitpid`).
    /// - Throws: ``SpawnError`` when `posix_spawn` fails.
    package static func start(
        _ arguments: [String],
        environment: [String: String]? = nil,
        input: Stream = .null,
        output: Stream = .null,
        errors: Stream = .descriptor(2),
        newProcessGroup: Bool = false
    ) throws(SpawnError) -> pid_t {
        precondition(!arguments.isEmpty, "Spawn.start needs at least the program's path")
        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #else
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (stream, target, mode) in [(input, Int32(0), O_RDONLY), (output, 1, O_WRONLY), (errors, 2, O_WRONLY)] {
            switch stream {
            case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", mode, 0)
            case .descriptor(let descriptor): posix_spawn_file_actions_adddup2(&actions, descriptor, target)
            }
        }
        // After the dup2s: nothing above standard error reaches the child.
        if closeFromAction?(&actions, 3) != 0 {
            markDescriptorsCloseOnExec()
        }

        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGQUIT, SIGHUP] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF) | Int32(POSIX_SPAWN_SETSIGMASK)
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for pointer in envp ?? [] { free(pointer) } }
        var pid: pid_t = 0
        let result =
            envp.map { posix_spawn(&pid, arguments[0], &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard result == 0 else { throw SpawnError(program: arguments[0], errno: result) }
        return pid
    }

    /// Waits for `pid` to end and reaps it. A pid that is not a child of this process (or was
    /// reaped already) reads as killed by SIGKILL.
    package static func wait(_ pid: pid_t) -> Termination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { return .signalled(SIGKILL) }
        }
        return termination(status)
    }

    /// Waits for `pid` to end without reaping it: its pid stays taken, so a `kill` sent before
    /// the caller reaps it (``wait(_:)``) cannot reach a recycled pid.
    package static func waitWithoutReaping(_ pid: pid_t) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1, errno == EINTR {}
    }

    /// A pipe whose two ends are close-on-exec: a child gets an end only by being given it
    /// (``Stream/descriptor(_:)``). With glibc both ends are made so atomically (`pipe2`); elsewhere
    /// a child spawned by another thread between `pipe` and `fcntl` may inherit them.
    package static func makePipe() throws(SpawnError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        if let pipe2 = pipe2Function {
            guard pipe2(&ends, O_CLOEXEC) == 0 else { throw SpawnError(program: "pipe2", errno: errno) }
        } else {
            guard pipe(&ends) == 0 else { throw SpawnError(program: "pipe", errno: errno) }
            for end in ends { _ = fcntl(end, F_SETFD, fcntl(end, F_GETFD) | FD_CLOEXEC) }
        }
        return (ends[0], ends[1])
    }

    /// `WIFEXITED`/`WEXITSTATUS`/`WTERMSIG`, spelled out (the C macros are not imported).
    static func termination(_ status: Int32) -> Termination {
        (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signalled(status & 0x7F)
    }

    /// A glibc function looked up by name at run time, typed as `type` (a `@convention(c)`
    /// function type): for those its headers declare only under `_GNU_SOURCE`, which Swift does
    /// not define, or only in recent versions. Nil where it is missing, and off glibc.
    package static func glibcFunction<Function>(_ name: String, as type: Function.Type) -> Function? {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, name) else { return nil }
        return unsafeBitCast(symbol, to: type)
        #else
        return nil
        #endif
    }

    /// glibc's `pipe2`.
    private static let pipe2Function = glibcFunction(
        "pipe2",
        as: (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32).self
    )

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later).
    private static let closeFromAction = glibcFunction(
        "posix_spawn_file_actions_addclosefrom_np",
        as: (@convention(c) (UnsafeMutableRawPointer, Int32) -> Int32).self
    )

    /// Where `closefrom` is missing: marks every descriptor above standard error close-on-exec.
    /// (Descriptors opened by other threads meanwhile may still be inherited.)
    private static func markDescriptorsCloseOnExec() {
        let limit = min(Int32(getdtablesize()), 65_536)
        guard limit > 3 else { return }
        for descriptor in 3..<limit {
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
    }
}

/// `posix_spawn` failed: the program is missing, not executable, or the system is out of
/// processes.
package struct SpawnError: Error, CustomStringConvertible {
    /// The path that was to be started.
    package var program: String
    /// The error number `posix_spawn` returned.
    package var errno: Int32
    package var description: String { "could not start \(program): \(String(cString: strerror(errno)))" }
}
