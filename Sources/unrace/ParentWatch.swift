import Foundation

/// An `unrace` process started by `unrace chaos` (serve, work) or by the tests exits when its
/// parent dies, so a fault run or test process that is itself killed (or crashes) leaves no
/// process behind holding its output. Off unless `UNRACE_EXIT_WITH_PARENT=1`.
enum ParentWatch {
    static let variable = "UNRACE_EXIT_WITH_PARENT"

    /// Starts watching when the variable is set: checks the parent every 250 ms, exits with
    /// status 1 once it has gone.
    static func startIfRequested() {
        guard ProcessInfo.processInfo.environment[variable] == "1" else { return }
        let parent = getppid()
        Thread {
            while getppid() == parent { usleep(250_000) }
            exit(1)
        }.start()
    }
}
