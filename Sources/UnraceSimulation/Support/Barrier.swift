/// An async barrier: the `parties`-th arrival releases everyone. Forces an interleaving — "every
/// read before any write" — without sleeping.
public actor Barrier {
    private let parties: Int
    private var arrived = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// A barrier for `parties` callers.
    public init(parties: Int) { self.parties = parties }

    /// Suspends until `parties` callers have arrived.
    public func arriveAndWait() async {
        arrived += 1
        if arrived == parties {
            for continuation in waiting { continuation.resume() }
            waiting.removeAll()
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }
}
