import ArgumentParser

/// `unrace`: the races of distributed systems, reproduced and fixed, on a real database.
@main
struct UnraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unrace",
        abstract: "Reproduce the races of distributed systems and watch Unrace's guards remove them.",
        subcommands: [
            DemoCommand.self, SimulateCommand.self, BenchCommand.self, WorkerCommand.self, ServeCommand.self, WorkCommand.self,
            CheckCommand.self, ChaosCommand.self, ProviderCommand.self, ProbeCommand.self,
        ]
    )

    /// Runs the command line; every subcommand first honours `UNRACE_EXIT_WITH_PARENT`
    /// (``ParentWatch``), so a test or fault run that dies leaves no `unrace` process behind.
    static func main() async {
        ParentWatch.startIfRequested()
        await main(nil)
    }
}
