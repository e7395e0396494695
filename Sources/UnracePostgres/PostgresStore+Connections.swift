import Foundation
import PostgresNIO
import Synchronization
import Unrace
import UnraceCore

// How a step gets its pooled connection: leased by a task of its own and lent to the step, with
// a bound on a wait during which the pool lends no connection and none is held by a step.
extension PostgresStore {
    /// How long a step waits for a pooled connection while the pool lends none and no step holds
    /// one: 10 s. While the server cannot be reached (down, failing over) PostgresNIO's pool
    /// retries one connection with a growing backoff and fails the steps waiting for it only
    /// after a minute; a step whose wait sees, for this long, no connection lent to a step of any
    /// store on the client, none given back and none held by one, stops waiting with a retryable
    /// ``UnraceCore/UnraceError/Code/storeUnavailable``, nothing sent.
    ///
    /// A step that waits behind others (more callers than connections) waits on while steps hold
    /// the connections: each holder's connection is given back, or closed, within its
    /// ``stepTimeout`` plus ``rollbackTimeout`` and a second (a holder is counted that long at
    /// most, even if its body goes on), and the period counts again from then. Connections held
    /// outside steps (the schema migration, an application's own use of the client) are not
    /// counted.
    ///
    /// A store made from a URL whose `connect_timeout` (``connectTimeout``) is longer waits that
    /// long instead: the pool may be opening a connection for that long. A store made on a client
    /// you configured (``init(client:stepTimeout:logger:)``) waits 10 s whatever its connect timeout.
    public static var connectionWaitMaximum: Duration { .seconds(10) }

    /// The wait of a store whose pool opens connections within `connectTimeout` (`nil`: unknown).
    static func connectionWait(_ connectTimeout: Duration?) -> Duration {
        max(connectionWaitMaximum, connectTimeout ?? .zero)
    }

    /// How long a step's connection counts as held, at most: past it the step's timeout has
    /// closed the connection, even if its body goes on.
    var holdMaximum: Duration { stepTimeout + Self.rollbackTimeout + PostgresSteps.closeWaitMaximum }

    /// Runs `body` on a connection of the pool (see ``connectionWaitMaximum``): the lease is held
    /// by a task of its own, which lends the connection to this caller (whose task runs `body`,
    /// with its cancellation and task-locals) and gives it back to the pool after.
    func withPooledConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let loan = Loan<PostgresConnection>()
        let (client, leases, holdMaximum) = (client, leases, holdMaximum)
        let lease = Task {
            do {
                try await client.withConnection { connection in
                    leases.noteLease(heldAtMost: holdMaximum)
                    defer { leases.noteReturn() }
                    await loan.lend(connection)
                }
            } catch {
                loan.fail(error)
            }
        }
        let watch = LeaseWatch(loan: loan, leases: leases, every: connectionWait)
        let connection: PostgresConnection
        do {
            connection = try await loan.borrow()
        } catch {
            watch.stop()
            loan.giveBack()
            lease.cancel()  // a lease still queued in the pool leaves the queue
            await lease.value
            throw error
        }
        watch.stop()
        return try await loan.use(connection, until: lease, body)
    }
}

/// When a client's pool last lent a connection to a step or got one back, how many steps hold
/// one now, and until when they may: a waiting step's sign of life. One per client, shared by
/// every store made on it: a step of one store waiting behind another's sees the pool lending.
final class LastLease: Sendable {
    /// Nanoseconds of the monotonic clock (`DispatchTime`); 0 before the first lease. Only moves on.
    private let lastEvent = Atomic<UInt64>(0)
    private let held = Atomic<Int>(0)
    /// The latest end of a lent connection's hold (``PostgresStore/holdMaximum``).
    private let heldUntil = Atomic<UInt64>(0)

    /// A step was lent a connection, which it holds for `bound` at most.
    func noteLease(heldAtMost bound: Duration) {
        let now = DispatchTime.now().uptimeNanoseconds
        heldUntil.max(now + bound.watchNanoseconds, ordering: .sequentiallyConsistent)
        lastEvent.max(now, ordering: .sequentiallyConsistent)
        // Counted last: a watch that sees the holder sees its times too.
        held.add(1, ordering: .sequentiallyConsistent)
    }
    /// A step gave its connection back to the pool.
    func noteReturn() {
        lastEvent.max(DispatchTime.now().uptimeNanoseconds, ordering: .sequentiallyConsistent)
        held.subtract(1, ordering: .sequentiallyConsistent)
    }
    /// When a connection was last lent or given back.
    var last: UInt64 { lastEvent.load(ordering: .sequentiallyConsistent) }
    /// How many connections steps hold now.
    var holders: Int { held.load(ordering: .sequentiallyConsistent) }
    /// When every connection lent so far is given back or closed, at the latest.
    var holdsEnd: UInt64 { heldUntil.load(ordering: .sequentiallyConsistent) }

    private struct Entry {
        weak var client: PostgresClient?
        let leases: LastLease
    }

    private static let byClient = Mutex<[ObjectIdentifier: Entry]>([:])

    /// The client's record, made by its first store; entries of clients gone are dropped.
    static func of(_ client: PostgresClient) -> LastLease {
        byClient.withLock { entries in
            if let entry = entries[ObjectIdentifier(client)], entry.client === client { return entry.leases }
            entries = entries.filter { $0.value.client != nil }
            let leases = LastLease()
            entries[ObjectIdentifier(client)] = Entry(client: client, leases: leases)
            return leases
        }
    }
}

/// Fails a step's wait for a pooled connection once `period` has passed since the wait began or
/// since the pool last lent a connection to a step or got one back (of any store on the client),
/// whichever is later, with no step holding a connection (or every hold past its bound); while
/// others get and hold theirs, it waits on.
struct LeaseWatch: Sendable {
    private let task: Task<Void, Never>

    init<Lent: Sendable>(loan: Loan<Lent>, leases: LastLease, every period: Duration) {
        let started = DispatchTime.now().uptimeNanoseconds
        let span = period.watchNanoseconds
        task = Task.detached {
            while true {
                // Read before the last event: a return after this read moves `last` on.
                let holders = leases.holders
                let due = max(started, leases.last) + span
                let now = DispatchTime.now().uptimeNanoseconds
                let holdsEnd = leases.holdsEnd
                if now >= due, holders == 0 || now >= holdsEnd { break }
                // Behind a holder: look again when its hold may end, a period on at most (a
                // return counts as the pool's sign of life).
                let wait = now < due ? due - now : min(span, holdsEnd - now)  // here a holder's bound is ahead
                do { try await Task.sleep(for: .nanoseconds(max(wait, 1_000_000))) } catch { return }  // stopped
            }
            guard !Task.isCancelled else { return }
            loan.fail(
                UnraceError(
                    .storeUnavailable,
                    "no PostgreSQL connection was lent to a step, or held by one, for \(period): the pool cannot open one (the server unreachable or failing over), or every connection is held outside Unrace's steps (a schema migration, the application's own use of the client); nothing was sent"
                )
            )
        }
    }

    /// The wait ended (lent, failed or cancelled): no more checks.
    func stop() { task.cancel() }
}

extension Duration {
    /// The duration in nanoseconds of `DispatchTime`, to the millisecond (``wholeMilliseconds``);
    /// 0 for a negative one. A step's hold and the wait's period are bounded far below overflow.
    fileprivate var watchNanoseconds: UInt64 { UInt64(max(0, wholeMilliseconds)) * 1_000_000 }
}
