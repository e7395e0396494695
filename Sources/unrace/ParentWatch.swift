import Foundation

/// An `unrace` process started by `unrace chaos` (serve, work) or by the tests exits when its
/// parent dies, so a fault run or test process that is itself killed (or crashes) leaves no
/// process behind holding its output.
///
/// Off unless `UNRACE_EXIT_WITH_PARENT` is set: to `1` (watch whichever process is the parent
/// at start) or, better, to the parent's process id, which also catches a parent that died
/// before this process got as far as looking.
enum ParentWatch {
    static let variable = "UNRACE_EXIT_WITH_PARENT"

    /// The value a parent gives its children: its own process id.
    static var valueForChildren: String { String(getpid()) }

    /// Starts watching when the variable is set: checks the parent every 250 ms and exits with
    /// status 1 once it has gone (at once if the named process is not this one's parent: it is
    /// gone already). The variable is removed from this process's environment, so what this
    /// process starts is not told of a parent that is not its own.
    static func startIfRequested() {
        guard let value = ProcessInfo.processInfo.environment[variable] else { return }
        unsetenv(variable)
        let parent: pid_t
        if value == "1" {
            parent = getppid()
        } else if let named = pid_t(value), named > 1 {
            parent = named
        } else {
            return
        }
        guard getppid() == parent else { leave(parent) }
        Thread {
            while getppid() == parent { usleep(250_000) }
            leave(parent)
        }.start()
    }

    /// Says why on standard error and exits at once (`_exit`: no exit handlers run while other
    /// threads still work).
    private static func leave(_ parent: pid_t) -> Never {
        let line = "unrace: exiting, its parent process \(parent) has gone (\(variable))\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        _exit(1)
    }
}
