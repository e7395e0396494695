/// An async barrier: the `parties`-th arrival releases everyone. Forces an interleaving — "every
/// read before any write" — without sleeping.
public actor Barrier {
    private let parties: Int
    private var arrived = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// A barrier for `parties` callers (a count below 1 is taken as 1: nobody waits).
    public init(parties: Int) { self.parties = max(1, parties) }

    /// Suspends until `parties` callers have arrived. The barrier is used once: a caller arriving
    /// after it released passes at once.
    public func arriveAndWait() async {
        arrived += 1
        if arrived >= parties {
            for continuation in waiting { continuation.resume() }
            waiting.removeAll()
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }
}
