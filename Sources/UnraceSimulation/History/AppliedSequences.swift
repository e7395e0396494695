/// The sequences applied on one stream, as the checker walks the effects.
struct AppliedSequences {
    var all: Set<Int64> = []
    /// The last ``HistoryReport/OutOfOrder/appliedBeforeMaximum``, in order.
    var last: [Int64] = []
    var count = 0

    mutating func add(_ sequence: Int64) {
        all.insert(sequence)
        count += 1
        if last.count == HistoryReport.OutOfOrder.appliedBeforeMaximum { last.removeFirst() }
        last.append(sequence)
    }
}
