import Unrace

/// Leases on clocks that disagree: a job is redelivered while its first worker still holds a live
/// lease, and a second worker whose clock runs ahead decides the lease has ended.
///
/// The naive handler keeps a lock row whose expiry each worker computes and checks on its own
/// clock (a client-clock lease), so a worker skewed ahead takes a live lease over and both do the
/// work. The guarded one uses `Operations.begin`/`complete` with the same skewed clock: a shared
/// database decides leases on its own clock (PostgreSQL's, here the run's), so the skew cannot
/// move a lease and the second worker is told the job is in progress.
enum ClockSkew {
    static let invariant = "no-early-takeover"

    static let scenario = Scenario(
        name: "clock-skew",
        race: "zombie",
        summary: "a worker whose clock runs ahead takes over a lease that is still live",
        invariants: [invariant],
        faults: [.latency, .clockSkew],
        pauseLength: 0,
        skewLength: 1_500
    ) { world, handler, knobs in
        let jobs = world.choices.inRange(1...3)
        let consumers = knobs.consumers ?? world.choices.inRange(2...4)
        let lease: Int64 = 500
        // The broker gives up on a delivery before the work is done, but well within the lease.
        let broker = Broker(world: world, visibilityTimeout: 250 * knobs.visibilityMultiplier)
        broker.createTopic("jobs", partitions: jobs)
        broker.subscribe(group: "workers", to: "jobs")
        for job in 0..<jobs { broker.preload(Broker.Message(id: "job-\(job)"), topic: "jobs", partition: job) }
        let skews = (0..<consumers).map { _ in
            world.faults.skewMaximum > 0
                ? Int64(world.choices.inRange(0...Int(2 * world.faults.skewMaximum))) - world.faults.skewMaximum : 0
        }
        world.setting(
            "\(counted(jobs, "job")), \(counted(consumers, "worker")), lease \(lease)ms, visibility \(broker.visibilityTimeout)ms, "
                + "clocks \(skews.map { $0 >= 0 ? "+\($0)ms" : "\($0)ms" }.joined(separator: " "))"
        )
        let writes = Notebook()

        for consumer in 1...consumers {
            let name = "worker-\(consumer)"
            let clock = world.clock.skewed(by: skews[consumer - 1])
            broker.consume(as: name, topic: "jobs", group: "workers") { delivery, incarnation in
                let job = delivery.message.id
                let work = Int64(world.choices.inRange(300...450))
                switch handler {
                case .naive:
                    let me = "\(name).\(incarnation)"
                    let now = clock.now().milliseconds
                    let acquired: Bool? = try await world.store.withTransaction { tx in
                        if try await tx.get("done", id: job) != nil { return nil }
                        let fields =
                            try await tx.get("locks", id: job).map { String(decoding: $0, as: UTF8.self).split(separator: "|") } ?? []
                        let until = fields.count == 2 ? Int64(fields[1]) ?? 0 : 0
                        guard until <= now else { return false }  // someone's lease is live, on my clock
                        try await tx.put("locks", id: job, Array("\(me)|\(now + lease)".utf8))
                        return true
                    }
                    guard let acquired else { return world.annotate("→ already done") }
                    guard acquired else { throw RetryLater() }
                    world.annotate("→ locked until \(now + lease - SimulationClock.epoch.milliseconds)ms on my clock")
                    try await world.work(work, "work on \(job)")
                    try await world.store.withTransaction { tx in
                        try await tx.put("writes", id: "\(job)#\(String(writes.next()).leftPadded(6))", Array(me.utf8))
                        try await tx.put("done", id: job, [1])
                    }
                    world.annotate("→ wrote the result")
                case .guarded:
                    let operations = try world.operations(holder: "\(name).\(incarnation)", lease: .milliseconds(lease), clock: clock)
                    switch try await operations.begin(key: job) {
                    case .completed: return
                    case .inProgress, .fingerprintMismatch: throw RetryLater()
                    case .acquired(let handle):
                        try await world.work(work, "work on \(job)")
                        try await operations.complete(handle, result: "done") { tx in
                            try await tx.put("writes", id: "\(job)#\(String(writes.next()).leftPadded(6))", Array(name.utf8))
                        }
                    }
                }
            }
        }

        return {
            var holders: [String: [String]] = [:]
            for (id, holder) in try await world.rows(in: "writes").sorted(by: { $0.key < $1.key }) {
                holders[String(id.prefix { $0 != "#" }), default: []].append(String(decoding: holder, as: UTF8.self))
            }
            return holders.sorted { $0.key < $1.key }.filter { $0.value.count > 1 }.map {
                Violation(
                    invariant,
                    "\($0.key) was done by \($0.value.joined(separator: " and ")): a lease was taken over while it was live"
                )
            }
        }
    }
}
