import Foundation
import Testing
import Unrace
import UnracePostgres

/// The command line as a newcomer meets it: help that shows what the README uses, clear
/// refusals of bad input, and quick, named failures when the database cannot be reached.
@Suite("Command line")
struct CLITests {
    @Test("simulate --help shows the options the README uses")
    func simulateHelp() async throws {
        let child = try ChildProcess(["simulate", "--help"])
        #expect(await child.exitStatus() == 0)
        for option in ["--list", "--scenario", "--handler", "--seed", "--seeds", "--trace", "--json", "--store"] {
            #expect(child.printed.contains(option), "simulate --help does not mention \(option)")
        }
    }

    @Test("simulate on the SQLite store prints its summary and no log lines; --log-level notice shows the retried updates")
    func simulateIsQuiet() async throws {
        let arguments = ["simulate", "--store", "sqlite", "--scenario", "wallet", "--seeds", "30", "--seed", "1", "--json"]
        let quiet = try ChildProcess(arguments, captureErrors: true)
        #expect(await quiet.exitStatus() == 0)
        #expect(!quiet.printed.contains("notice") && !quiet.printed.contains("record update landed"), "\(quiet.printed.prefix(300))")
        let told = try ChildProcess(arguments + ["--log-level", "notice"], captureErrors: true)
        #expect(await told.exitStatus() == 0)
        #expect(told.printed.contains("record update landed after retrying version conflicts"))
    }

    @Test(
        "a negative or non-numeric seed is refused with a message that says what a seed is",
        arguments: [
            ["simulate", "--seed", "-1"], ["simulate", "--seed=-1"], ["simulate", "--seed", "x"], ["simulate", "sweep", "--seed", "-1"],
        ]
    )
    func badSeed(_ arguments: [String]) async throws {
        let child = try ChildProcess(arguments, captureErrors: true)
        #expect(await child.exitStatus() != 0)
        #expect(child.printed.contains("a seed is a whole number from 0 to 18446744073709551615"), "\(child.printed)")
    }

    @Test("seeds that would run past UInt64.max are refused, not wrapped to seed 0")
    func seedsPastTheEnd() async throws {
        for arguments in [
            ["simulate", "--seed", "18446744073709551615", "--seeds", "3"], ["simulate", "sweep", "--seed", "18446744073709551610"],
        ] {
            let child = try ChildProcess(arguments, captureErrors: true)
            #expect(await child.exitStatus() == 64)
            #expect(child.printed.contains("would run past the last seed, 18446744073709551615"), "\(child.printed)")
        }
        let last = try ChildProcess(["simulate", "--scenario", "wallet", "--seed", "18446744073709551614", "--seeds", "2"])
        #expect(await last.exitStatus() == 0)
        #expect(last.printed.contains("18446744073709551614…18446744073709551615"), "\(last.printed)")
    }

    @Test("simulate: an --html file that cannot be written still prints the JSON, and exits 2 (not a usage error)")
    func simulateUnwritableHTML() async throws {
        let nowhere = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("none")).appendingPathComponent("x.html")
            .path
        let child = try ChildProcess(["simulate", "--scenario", "wallet", "--seed", "3", "--json", "--html", nowhere], captureErrors: true)
        #expect(await child.exitStatus() == 2)
        #expect(child.printed.contains(#""scenario":"wallet""#) && child.printed.contains("cannot write \(nowhere)"), "\(child.printed)")
    }

    @Test("simulate sweep --json names its first seed, so the run can be repeated")
    func sweepNamesItsSeed() async throws {
        let child = try ChildProcess(["simulate", "sweep", "--seeds", "10", "--seed", "7", "--json"])
        #expect(await child.exitStatus() == 0)
        #expect(child.printed.contains(#""firstSeed":7"#), "\(child.printed)")
    }

    @Test("an unreachable PostgreSQL fails within seconds, naming the host, the port and the cause")
    func unreachableDatabase() async throws {
        // A port nothing listens on, held bound so no other test's server takes it meanwhile.
        let refusing = try RefusingPort()
        defer { withExtendedLifetime(refusing) {} }
        let port = refusing.port
        // The baseline, started at the same moment under the same load: the same command with a
        // URL it refuses before any connection is tried. What the unreachable run takes beyond
        // it is the time spent finding out the server is not there. (Starting a debug `unrace`
        // took up to 20 s on a loaded CI machine, so a bound on the whole run measured the
        // machine, not the probe.)
        async let baseline = Self.timedRun(["demo", "--database", "postgres://postgres@127.0.0.1:\(port)/nothing?sslmode=bogus"])
        async let unreachable = Self.timedRun(["demo", "--database", "postgres://postgres@127.0.0.1:\(port)/nothing"])
        let (base, run) = try await (baseline, unreachable)
        // Not exit 1, which says a guard failed: 64 for the URL, 2 for a database that cannot be used.
        #expect(base.status == 64)
        #expect(base.printed.contains("sslmode must be disable or require"), "\(base.printed)")
        #expect(run.status == 2)
        #expect(!run.printed.contains("ANOMALY"), "\(run.printed)")
        // The probe gives up after its connect timeout at most (10 s; a refused connection fails at once); the pool it
        // replaces tripped its circuit breaker after about a minute.
        #expect(run.elapsed - base.elapsed < .seconds(10), "unreachable: \(run.elapsed), baseline: \(base.elapsed)")
        #expect(run.printed.contains("cannot reach PostgreSQL at 127.0.0.1:\(port)"), "\(run.printed)")
        #expect(run.printed.lowercased().contains("refused"), "\(run.printed)")
    }

    @Test("in process, both ways of opening a PostgresStore refuse an unreachable server with store_unavailable, naming it")
    func unreachableDatabaseInProcess() async throws {
        let refusing = try RefusingPort()
        defer { withExtendedLifetime(refusing) {} }
        let port = refusing.port
        let url = "postgres://postgres@127.0.0.1:\(port)/nothing"
        let start = ContinuousClock.now
        let scoped = await #expect(throws: UnraceError.self) { try await PostgresStore.withStore(url: url) { _ in 1 } }
        let service = await #expect(throws: UnraceError.self) { _ = try await PostgresStore(url: url) }
        for error in [scoped, service] {
            #expect(error?.code == .storeUnavailable)
            // The start's own probe named the place (the pool's circuit breaker names none): as
            // refused, or — once, under the whole suite's load — as timed out after its 11 s.
            #expect(error?.message.contains("cannot reach PostgreSQL at 127.0.0.1:\(port)") == true, "\(String(describing: error))")
        }
        // Refused connections fail at once (milliseconds alone); the pool's circuit breaker took
        // about a minute for each. The bound leaves room for the whole suite's load on 2 cores,
        // which once stretched this to 30 s.
        #expect(ContinuousClock.now - start < .seconds(55))
    }

    private static func timedRun(_ arguments: [String]) async throws -> (status: Int32, printed: String, elapsed: Duration) {
        let child = try ChildProcess(arguments, captureErrors: true)
        let status = await child.exitStatus()
        return (status, child.printed, try #require(child.lifetime))
    }
}

extension CLITests {
    @Test(
        "options a run could not use are usage errors (exit 64) before anything starts: a provider without a scheme, a worker name too long, helper counts out of range, a tracer with --metrics-only",
        arguments: [
            (["work", "--provider", "127.0.0.1:9000"], "--provider: the provider must be"),
            (["work", "--provider", "ftp://127.0.0.1:9000"], "--provider: the provider must be"),
            (["serve", "--provider", "localhost:9000"], "--provider: the provider must be"),
            (["work", "--name", String(repeating: "w", count: 200)], "--name: "),
            (["worker", "perform-keys", "--scope", "s", "--table", "t", "--keys=-1"], "--keys must be between 0 and 1000000"),
            (
                ["worker", "consume-orders", "--prefix", "p", "--orders", "1", "--seed", "1", "--lane", "0", "--lanes", "0"],
                "--lanes must be between 1 and 64"
            ),
            (
                ["worker", "ledger-transfers", "--prefix", "p", "--count=-1", "--seed", "1", "--lane", "0"],
                "--count must be between 0 and 1000000"
            ),
            (["bench", "observability", "--metrics-only", "--tracer", "in-memory"], "--tracer has no effect with --metrics-only"),
        ]
    )
    func unusableOptions(_ arguments: [String], _ named: String) async throws {
        let child = try ChildProcess(arguments, captureErrors: true)
        #expect(await child.exitStatus() == 64, "\(child.printed.prefix(400))")
        #expect(child.printed.contains(named), "\(child.printed.prefix(400))")
    }
}

extension CLITests {
    @Test("an endless input is read no further than its limit: check /dev/zero exits 2 and probe --body-file /dev/zero is a usage error")
    func endlessInputs() async throws {
        let check = try ChildProcess(["check", "/dev/zero"], captureErrors: true)
        #expect(await check.exitStatus() == 2)
        #expect(check.printed.contains("is larger than 67108864 bytes"), "\(check.printed.prefix(400))")
        let directory = try ChildProcess(["check", FileManager.default.temporaryDirectory.path], captureErrors: true)
        #expect(await directory.exitStatus() == 2, "a directory is not an empty history: \(directory.printed.prefix(300))")
        let probe = try ChildProcess(["probe", "http://127.0.0.1:1/x", "--body-file", "/dev/zero"], captureErrors: true)
        #expect(await probe.exitStatus() == 64)
        #expect(probe.printed.contains("larger than 1048576 bytes"), "\(probe.printed.prefix(400))")
    }

    @Test(
        "serve and work refuse options that could never work as usage errors (64), before opening anything",
        arguments: [
            ["serve", "--stock", "wid get=5"], ["serve", "--stock", "caf\u{E9}=5"], ["serve", "--stock", "w=1", "--stock", "w=2"],
            ["serve", "--database", "shop.sqlite"], ["serve", "--provider", "http://127.0.0.1:0"],
            ["work", "--database", "shop.sqlite"], ["work", "--provider", "http://127.0.0.1:0"],
        ]
    )
    func unusableOptions(_ arguments: [String]) async throws {
        let child = try ChildProcess(arguments + ["--port", "0"].filter { _ in arguments[0] == "serve" }, captureErrors: true)
        #expect(await child.exitStatus() == 64, "\(arguments): \(child.printed.prefix(300))")
        #expect(!child.printed.contains("listening on"))
    }
}
