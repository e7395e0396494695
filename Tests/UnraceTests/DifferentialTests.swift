import Foundation
import Testing
import Unrace
import UnraceSQL

/// The same seeded workload of public-API calls on MemoryStore, SQLite and PostgreSQL: every
/// answer and the final state must agree. This is how "the same guarantees on every store" is
/// shown rather than trusted.
///
/// `UNRACE_DIFFERENTIAL_SEEDS` (default 200) and `UNRACE_DIFFERENTIAL_FIRST_SEED` (default 1)
/// choose the seeds: `UNRACE_DIFFERENTIAL_SEEDS=10000 scripts/test --filter Differential` runs ten
/// thousand. The seeds are dealt round-robin to ``shards`` test cases, each on stores of its own,
/// which run in parallel: every seed still runs on every store, in less wall time.
@Suite("Cross-store differential")
struct DifferentialTests {
    static let environment = ProcessInfo.processInfo.environment
    static let seeds = environment["UNRACE_DIFFERENTIAL_SEEDS"].flatMap(Int.init) ?? 200
    static let firstSeed = environment["UNRACE_DIFFERENTIAL_FIRST_SEED"].flatMap(UInt64.init) ?? 1
    /// How many parallel cases share the seeds.
    static let shards = 4

    /// The seeds of one shard: every `shards`-th seed from the first, starting at its own offset.
    static func seeds(ofShard shard: Int) -> [UInt64] {
        (firstSeed..<(firstSeed + UInt64(seeds))).filter { ($0 - firstSeed) % UInt64(shards) == UInt64(shard) }
    }

    @Test("the shards deal every seed once")
    func shardsCoverTheSeeds() {
        let dealt = (0..<Self.shards).flatMap { Self.seeds(ofShard: $0) }
        #expect(dealt.count == Self.seeds && Set(dealt) == Set(Self.firstSeed..<(Self.firstSeed + UInt64(Self.seeds))))
    }

    @Test("memory, SQLite and PostgreSQL give the same answers and end in the same state", arguments: 0..<shards)
    func sameAnswersOnEveryStore(shard: Int) async throws {
        try await withStore(.sqlite) { sqlite, _ in
            if TestPostgres.required {
                try await withStore(.postgres) { postgres, _ in try await Self.compare(sqlite, postgres, shard: shard) }
            } else {
                try await Self.compare(sqlite, Optional<MemoryStore>.none, shard: shard)
            }
        }
    }

    @Test("a Fluent database's store, on each Fluent driver, gives memory's answers and ends in its state", arguments: 0..<shards)
    func sameAnswersOnFluent(shard: Int) async throws {
        try await withFluentStore(.sqlite) { sqlite, _ in
            if TestPostgres.required {
                try await withFluentStore(.postgres) { postgres, _ in
                    try await Self.compare(sqlite, postgres, shard: shard, names: ("fluent-sqlite", "fluent-postgres"))
                }
            } else {
                try await Self.compare(sqlite, Optional<MemoryStore>.none, shard: shard, names: ("fluent-sqlite", ""))
            }
        }
    }

    static func compare<A: SQLStore, B: Store>(
        _ sqlite: A,
        _ postgres: B?,
        shard: Int,
        names: (String, String) = ("sqlite", "postgres")
    ) async throws {
        var checked = 0
        let seeds = Self.seeds(ofShard: shard)
        for seed in seeds {
            let workload = Workload(seed: seed)
            let reference = try await WorkloadRunner(store: MemoryStore()).run(workload)
            try await reset(sqlite)
            guard agree(reference, try await WorkloadRunner(store: sqlite).run(workload), seed, workload, names.0) else { return }
            if let postgres {
                try await reset(postgres)
                guard agree(reference, try await WorkloadRunner(store: postgres).run(workload), seed, workload, names.1) else { return }
            }
            checked += 1
        }
        #expect(checked == seeds.count)
    }

    /// Records the first difference, with the seed and the call, and says whether there was none.
    static func agree(
        _ expected: (answers: [String], state: [String]),
        _ actual: (answers: [String], state: [String]),
        _ seed: UInt64,
        _ workload: Workload,
        _ store: String
    ) -> Bool {
        if let index = expected.answers.indices.first(where: { expected.answers[$0] != actual.answers[$0] }) {
            Issue.record(
                """
                seed \(seed): call \(index) differs on \(store) (UNRACE_DIFFERENTIAL_FIRST_SEED=\(seed) UNRACE_DIFFERENTIAL_SEEDS=1)
                  call:   \(workload.calls[index])
                  memory: \(expected.answers[index])
                  \(store): \(actual.answers[index])
                """
            )
            return false
        }
        if let index = expected.state.indices.first(where: { expected.state[$0] != actual.state[$0] }) {
            Issue.record(
                "seed \(seed): final state differs on \(store)\n  memory: \(expected.state[index])\n  \(store): \(actual.state[index])"
            )
            return false
        }
        return true
    }

    /// Empties every Unrace table: each seed starts from nothing.
    static func reset<S: Store>(_ store: S) async throws {
        guard let sql = store as? any SQLStore else { return }
        try await empty(sql)
    }

    static func empty<S: SQLStore>(_ store: S) async throws {
        let tables = [
            "unrace_operations", "unrace_inbox_streams", "unrace_inbox_events", "unrace_lifecycle_states", "unrace_records",
            "unrace_counters", "unrace_quotas", "unrace_resources", "unrace_holds", "unrace_accounts", "unrace_transfers",
            "unrace_transfer_failures", "unrace_queue_messages", "unrace_queue_sequences",
        ]
        // DELETE on both: these tables hold a few rows, and PostgreSQL's TRUNCATE makes new files
        // for every table and index (about 75 ms for these 14 here, against a few for DELETE).
        _ = try await store.withTransaction { tx in
            for table in tables { try await tx.execute("DELETE FROM \(table)") }
        }
    }
}
