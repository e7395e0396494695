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

    /// Starts watching when the variable is set: checks the parent every 250 ms, exits with
    /// status 1 once it has gone (at once if the named parent is already gone).
    static func startIfRequested() {
        guard let value = ProcessInfo.processInfo.environment[variable] else { return }
        let parent: pid_t
        if value == "1" {
            parent = getppid()
        } else if let named = pid_t(value), named > 1 {
            parent = named
        } else {
            return
        }
        guard getppid() == parent else { exit(1) }
        Thread {
            while getppid() == parent { usleep(250_000) }
            exit(1)
        }.start()
    }
}
