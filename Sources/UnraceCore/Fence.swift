/// The fencing rule: who may still write under an operation key.
public enum Fence {
    /// Whether the holder of `token` may write to `record`: the record exists, is still running,
    /// and `token` is its current token. Anything else means the holder lost the key (its lease
    /// ended and a newer holder took over, or the operation already ended).
    ///
    /// `createdAt`, when given, is when the holder's record was first created: a key purged after
    /// its retention and claimed anew starts again at token 1, and the creation time tells that
    /// new record from the one an old holder was given.
    public static func admits(_ record: OperationRecord?, token: FencingToken, createdAt: Timestamp? = nil) -> Bool {
        guard let record else { return false }
        if let createdAt, record.createdAt != createdAt { return false }
        return record.state == .running && record.token == token
    }

    /// Whether `record` is the holder's own record, already ended: a `complete` or `fail` that
    /// finds it was sent again after its first attempt committed (after ``UnraceError/Code/outcomeUnknown``,
    /// say) — done already when it ended the same way, refused when another way — not refused
    /// because another holder took the key.
    package static func endedByHolder(_ record: OperationRecord?, token: FencingToken, createdAt: Timestamp? = nil) -> Bool {
        guard let record, record.state != .running, record.token == token else { return false }
        return createdAt.map { $0 == record.createdAt } ?? true
    }

    /// The error a fenced holder gets. Log-safe: names neither key nor payload.
    public static func error(token: FencingToken, current: OperationRecord?, createdAt: Timestamp? = nil) -> UnraceError {
        let detail = current.map { "current token \($0.token), state \($0.state.rawValue)" } ?? "record absent"
        if endedByHolder(current, token: token, createdAt: createdAt) {
            return UnraceError(
                .fenced,
                "this holder's operation already ended another way (a complete after its own fail, say); nothing was written now",
                detail: "holder token \(token); \(detail)"
            )
        }
        return UnraceError(
            .fenced,
            "the lease for this operation was lost to a newer holder; this holder's writes were rolled back",
            detail: "holder token \(token); \(detail)"
        )
    }
}
