import Unrace

/// The zombie: a holder stops (a GC pause, a frozen VM) longer than its lease, another worker
/// takes the job over and finishes it, and the first wakes up and writes anyway.
///
/// The naive handler uses a lock row with an expiry and no fencing token. The guarded one uses
/// `Operations.begin`/`complete`: the takeover gets a larger fencing token, and the old
/// holder's completion (and its local write) is refused.
enum Zombie {
    static let invariant = "no-write-from-fenced-holder"

    static let scenario = Scenario(
        name: "zombie-holder",
        race: "zombie",
        summary: "a paused holder outlives its lease and writes after another took over",
        invariants: [invariant],
        faults: [.latency, .transient, .crash, .pause, .slowWork],
        pauseLength: 1_500
    ) { world, handler, knobs in
        let jobs = world.choices.inRange(1...4)
        let consumers = knobs.consumers ?? world.choices.inRange(2...4)
        let lease: Int64 = 500
        let broker = Broker(world: world, visibilityTimeout: 600 * knobs.visibilityMultiplier)
        broker.createTopic("jobs", partitions: jobs)
        broker.subscribe(group: "workers", to: "jobs")
        for job in 0..<jobs { broker.preload(Broker.Message(id: "job-\(job)"), topic: "jobs", partition: job) }
        world.setting(
            "\(counted(jobs, "job")), \(counted(consumers, "worker")), lease \(lease)ms, visibility \(broker.visibilityTimeout)ms"
        )
        /// The largest holder number granted per job so far (a fencing token, or the naive
        /// lock's acquisition count).
        let granted = Notebook()
        let writes = Notebook()

        /// Writes the job's result, noting whether a later holder had been granted the job.
        @Sendable func write(_ tx: SimulationTransaction, _ job: String, holder: Int64) async throws {
            let latest = granted.counts[job] ?? 0
            try await tx.put("writes", id: "\(job)#\(String(writes.next()).leftPadded(6))", Array("\(holder)/\(latest)".utf8))
        }

        for consumer in 1...consumers {
            let name = "worker-\(consumer)"
            broker.consume(as: name, topic: "jobs", group: "workers") { delivery, incarnation in
                let job = delivery.message.id
                let work =
                    Int64(world.choices.inRange(50...200))
                    + (world.choices.chance(perMille: world.faults.slowWorkPerMille) ? lease : 0)
                switch handler {
                case .naive:
                    let me = "\(name).\(incarnation)"
                    let now = world.scheduler.now
                    let acquisition: Int64? = try await world.store.withTransaction { tx in
                        let fields =
                            try await tx.get("locks", id: job).map { String(decoding: $0, as: UTF8.self).split(separator: "|") } ?? []
                        let until = fields.count == 3 ? Int64(fields[1]) ?? 0 : 0
                        let count = fields.count == 3 ? Int64(fields[2]) ?? 0 : 0
                        if try await tx.get("done", id: job) != nil { return 0 }
                        guard fields.isEmpty || fields[0].isEmpty || until <= now else { return nil }
                        try await tx.put("locks", id: job, Array("\(me)|\(now + lease)|\(count + 1)".utf8))
                        return count + 1
                    }
                    guard let acquisition else { throw RetryLater() }
                    if acquisition == 0 { return world.annotate("→ already done") }
                    world.annotate("→ locked (#\(acquisition))")
                    granted.counts[job] = max(granted.counts[job] ?? 0, acquisition)
                    try await world.work(work, "work on \(job)")
                    try await world.store.withTransaction { tx in
                        try await write(tx, job, holder: acquisition)
                        try await tx.put("done", id: job, [1])
                        try await tx.put("locks", id: job, Array("|0|\(acquisition)".utf8))
                    }
                    world.annotate("→ wrote the result, released the lock")
                case .guarded:
                    let operations = try world.operations(holder: "\(name).\(incarnation)", lease: .milliseconds(lease))
                    switch try await operations.begin(key: job) {
                    case .completed: return
                    case .inProgress, .fingerprintMismatch: throw RetryLater()
                    case .acquired(let handle):
                        granted.counts[job] = max(granted.counts[job] ?? 0, Int64(handle.token.value))
                        try await world.work(work, "work on \(job)")
                        try await operations.complete(handle, result: "done") { tx in
                            try await write(tx, job, holder: Int64(handle.token.value))
                        }
                    }
                }
            }
        }

        return {
            try await world.rows(in: "writes").sorted { $0.key < $1.key }.compactMap { id, value in
                let parts = String(decoding: value, as: UTF8.self).split(separator: "/").compactMap { Int64($0) }
                guard parts.count == 2, parts[0] < parts[1] else { return nil }
                return Violation(invariant, "\(id.prefix { $0 != "#" }) written by holder #\(parts[0]) after #\(parts[1]) took it over")
            }
        }
    }
}
