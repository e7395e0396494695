public import UnraceCore

/// Unrace's rows inside one step: how a store reads, locks and writes them — and nothing else.
///
/// Every decision is made by the caller (Unrace's guards) from what these methods return; a store
/// only moves rows. "Lock" means: until the step ends, no other step may change the row (or, for
/// an absent row where the method says so, create it). On a store whose steps run one at a time
/// (SQLite's single writer, ``MemoryStore``) a plain read is a lock.
///
/// Writes (`save…`, `insert…`) may be deferred to the commit: nothing in a step reads back a row
/// it wrote, except where a method says otherwise.
///
/// It is composed of one protocol per guard: each guard's rows are declared, documented and
/// implemented apart (one file per guard per backend), and a new guard is one new protocol (see
/// `ARCHITECTURE.md`). A step's body still sees them all.
public protocol StoreRows: OperationRows, RecordRows, CounterRows, HoldRows, LedgerRows, InboxRows, QueueRows, LifecycleRows,
    StepSavepoints
{}

/// Undoing the latest writes of a step without ending it: what lets ``Operations`` roll back a
/// body's writes and still complete the claim it holds in the same step (the idempotency
/// middleware's stored error responses), so the claim never lapses while duplicates wait.
public protocol StepSavepoints: Sendable {
    /// Marks the step's writes so far: Unrace's rows and the caller's own, in the same transaction.
    func savepoint() async throws -> StepSavepoint
    /// Undoes every write of the step made after `savepoint` was taken (on SQL, `ROLLBACK TO
    /// SAVEPOINT`, which also clears a statement's failure on PostgreSQL), keeping the step, the
    /// writes before it and the locks it holds.
    func rollback(to savepoint: StepSavepoint) async throws
}

/// A mark ``StepSavepoints/savepoint()`` returned: what the store needs to roll back to it.
public struct StepSavepoint: Sendable {
    /// The store's own record of the mark (a copy of the state, a savepoint's name).
    package let mark: any Sendable

    /// Wraps a store's record of a mark.
    package init(_ mark: any Sendable) { self.mark = mark }
}

/// The time a step decides at, which every guard's rows share.
public protocol StepTime: Sendable {
    /// The time the step decides at: the caller's clock read once the step began, or the
    /// database's own clock (PostgreSQL, for real-time clocks), read in the step.
    func now() async throws -> Timestamp
    /// The step's time after the step waited for locks: a store that read its own clock before
    /// the wait (PostgreSQL) reads it again and moves the step's time on to it; every other store
    /// keeps ``now()``. Call it only before the step decided or wrote anything on its time (the
    /// ledger does, after locking a group's accounts), or one step would mix two times.
    /// Default: ``now()``.
    func timeAfterWait() async throws -> Timestamp
}

/// How long a wait for locks must last before a step that may read its time again (a claim, a
/// ledger group) calls ``StepTime/timeAfterWait()``: 100 ms. Shorter waits decide at the time read
/// before them, at most this early.
package let stepTimeRereadAfterWait: Duration = .milliseconds(100)

extension StepTime {
    /// ``now()``: the step's time does not move.
    public func timeAfterWait() async throws -> Timestamp { try await now() }
}
