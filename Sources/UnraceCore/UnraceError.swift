/// The one error type Unrace throws.
///
/// Switch on ``code`` (stable across releases: codes are only ever added, never renumbered or
/// renamed). ``description`` is safe to log: it never contains keys, payloads or SQL.
/// ``debugDescription`` adds the detail and the underlying cause for debugging.
public struct UnraceError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// A stable, machine-readable error code.
    ///
    /// A struct over a private enum, so new codes can be added without breaking `switch`es
    /// in client code that handle a `default` case.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable {
            case invalidKey = "invalid_key"
            case invalidScope = "invalid_scope"
            case unknownScope = "unknown_scope"
            case invalidLease = "invalid_lease"
            case invalidArgument = "invalid_argument"
            case invalidConfiguration = "invalid_configuration"
            case invalidDatabaseURL = "invalid_database_url"
            case fingerprintMismatch = "fingerprint_mismatch"
            case fenced = "fenced"
            case inProgress = "in_progress"
            case waitTimedOut = "wait_timed_out"
            case outcomeDecodingFailed = "outcome_decoding_failed"
            case operationFailed = "operation_failed"
            case storeUnavailable = "store_unavailable"
            case storeFailure = "store_failure"
            case unsupportedDatabase = "unsupported_database"
            case schemaTooNew = "schema_too_new"
            case retryLimitReached = "retry_limit_reached"
            case constraintViolation = "constraint_violation"
            case invalidLifecycle = "invalid_lifecycle"
            case invalidEvent = "invalid_event"
            case parkingLimitReached = "parking_limit_reached"
            case versionConflict = "version_conflict"
            case notFound = "not_found"
            case nestedStep = "nested_step"
            case stepEnded = "step_ended"
            case eventIDReused = "event_id_reused"
            case holdKeyReused = "hold_key_reused"
            case messageIDReused = "message_id_reused"
            case databaseReadOnly = "database_read_only"
            case outcomeUnknown = "outcome_unknown"
        }

        fileprivate let base: Base
        private init(_ base: Base) { self.base = base }

        /// The stable string form of the code, for logs, metrics and problem documents.
        public var rawValue: String { base.rawValue }
        /// A short, log-safe text form.
        public var description: String { base.rawValue }

        /// An operation key is empty, longer than ``OperationKey/maximumByteCount`` bytes, or
        /// contains characters that are not printable.
        public static let invalidKey = Code(.invalidKey)
        /// A scope is empty, too long, or uses characters outside `[A-Za-z0-9._:-]`.
        public static let invalidScope = Code(.invalidScope)
        /// A scope that the configuration does not allow.
        public static let unknownScope = Code(.unknownScope)
        /// A lease duration that is zero, negative, or beyond the documented maximum.
        public static let invalidLease = Code(.invalidLease)
        /// Any other argument outside its documented range (a limit, a timeout, a label).
        public static let invalidArgument = Code(.invalidArgument)
        /// A configuration value outside its documented range.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A `postgres://` URL Unrace cannot use (a bad port, percent-encoding, `sslmode`,
        /// `search_path` or connection-check interval), or one whose start-up the server refuses
        /// every time (the user or password, a missing database, a `search_path` naming no schema
        /// the user can use, `sslmode=require` without TLS).
        public static let invalidDatabaseURL = Code(.invalidDatabaseURL)
        /// The key was already used with a different request body.
        public static let fingerprintMismatch = Code(.fingerprintMismatch)
        /// The caller's lease was taken over by a newer holder; its writes were rolled back.
        public static let fenced = Code(.fenced)
        /// Another holder is running the operation and the caller chose not to wait.
        public static let inProgress = Code(.inProgress)
        /// Waiting for another holder's outcome took longer than the caller allowed.
        public static let waitTimedOut = Code(.waitTimedOut)
        /// A stored outcome could not be decoded as the type the caller asked for.
        public static let outcomeDecodingFailed = Code(.outcomeDecodingFailed)
        /// The operation ended in a terminal failure; the stored failure is replayed.
        public static let operationFailed = Code(.operationFailed)
        /// The store could not be reached.
        public static let storeUnavailable = Code(.storeUnavailable)
        /// The store reported an error Unrace does not classify further.
        public static let storeFailure = Code(.storeFailure)
        /// The database engine is too old or lacks a required feature.
        public static let unsupportedDatabase = Code(.unsupportedDatabase)
        /// The database schema was written by a newer Unrace than this one.
        public static let schemaTooNew = Code(.schemaTooNew)
        /// A bounded retry loop gave up (for example, repeated serialization failures).
        public static let retryLimitReached = Code(.retryLimitReached)
        /// A statement broke a unique, check or foreign-key constraint (SQLSTATE 23xxx,
        /// SQLITE_CONSTRAINT). The transaction rolled back.
        public static let constraintViolation = Code(.constraintViolation)
        /// A lifecycle declaration names an unknown state, leaves a state unreachable, or maps
        /// one (state, event) pair to two targets. The message names the offending state or rule.
        public static let invalidLifecycle = Code(.invalidLifecycle)
        /// An inbox event with an empty or oversized id, stream or type, or a sequence below 1.
        public static let invalidEvent = Code(.invalidEvent)
        /// A stream already parks as many early events as allowed; the event was not stored and
        /// must not be acknowledged, so the broker delivers it again later.
        public static let parkingLimitReached = Code(.parkingLimitReached)
        /// A write named a version that is no longer the current one: another writer got there
        /// first. Nothing was written; re-read and decide again.
        public static let versionConflict = Code(.versionConflict)
        /// The record, counter, resource or hold does not exist.
        public static let notFound = Code(.notFound)
        /// A step (`perform`, a ledger submission, an inbox receive …) was started inside another
        /// step's body. Refused at once on every store: it would deadlock on a single writer, or
        /// commit apart from its step. Use the transaction the body was given.
        public static let nestedStep = Code(.nestedStep)
        /// A transaction handle was used after its step ended (it escaped the step's body).
        /// Refused before anything is sent: the connection may be another step's by then, and on
        /// SQLite the statement would run in whatever transaction another step has open. Use a
        /// step's transaction only inside its body.
        public static let stepEnded = Code(.stepEnded)
        /// An inbox event id arrived again with another stream, sequence, type or payload. Event
        /// ids are unique across all streams; nothing was written and the handler did not run
        /// (on PostgreSQL, when the other receive had not committed, the handler may have run in
        /// an attempt that was then rolled back whole: see the ordered inbox article).
        public static let eventIDReused = Code(.eventIDReused)
        /// A hold key is already used for a hold on another resource, or with another number of
        /// units. Hold keys are unique across resources; nothing was written.
        public static let holdKeyReused = Code(.holdKeyReused)
        /// A queue message id was enqueued again with another payload or ordering key. Message
        /// ids are unique per queue; nothing was written.
        public static let messageIDReused = Code(.messageIDReused)
        /// The database refused to write: it is a read-only standby (PostgreSQL SQLSTATE 25006),
        /// as during a failover before the standby is promoted, or the primary was demoted.
        /// Retryable: nothing was written; try again once a primary takes writes.
        public static let databaseReadOnly = Code(.databaseReadOnly)
        /// The connection was lost while `COMMIT` was on its way: the step may or may not have
        /// committed (on a database that failed over, it committed only if the standby had it).
        /// Retryable for Unrace's own calls: a `perform` retried after a committed claim replays
        /// it, never runs the body again; a claim that did not commit is claimed afresh. Business
        /// writes in ``Store/withTransaction(_:)`` must be checked, as after any lost commit.
        public static let outcomeUnknown = Code(.outcomeUnknown)
    }

    /// What went wrong, as a stable code.
    public var code: Code
    /// A clear, log-safe message: it names the rule that was broken, never the key or payload.
    public var message: String
    /// Extra detail for debugging (may contain keys or SQL state); not part of ``description``.
    public var detail: String?
    /// The error that caused this one, if any (a driver error, a decoding error).
    public var underlying: (any Error)?
    /// Where the error was raised.
    public var file: String
    /// Where the error was raised.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        detail: String? = nil,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.detail = detail
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// Whether the same call may succeed if simply tried again later: the store was unreachable
    /// or lost its connection mid-step (``Code/storeUnavailable``), refused writes while failing
    /// over (``Code/databaseReadOnly``), lost the answer to its commit (``Code/outcomeUnknown``),
    /// or concurrent transactions kept conflicting past the retry limit. Nothing of the failed
    /// call was written, except that after ``Code/outcomeUnknown`` it may have been. An HTTP edge
    /// answers these with 503 and `Retry-After`.
    public var isRetryable: Bool {
        code == .storeUnavailable || code == .retryLimitReached || code == .databaseReadOnly || code == .outcomeUnknown
    }

    /// A short, log-safe text form.
    public var description: String { "UnraceError(\(code)): \(message)" }

    /// The description with detail, the underlying error and the source location.
    public var debugDescription: String {
        var text = "UnraceError(\(code)): \(message)"
        if let detail { text += " [\(detail)]" }
        if let underlying { text += " underlying: \(String(reflecting: underlying))" }
        return text + " at \(file):\(line)"
    }
}

extension UnraceError {
    /// What a step's transaction throws when it is used after its step ended.
    package static var stepEnded: UnraceError {
        UnraceError(.stepEnded, "this transaction's step has ended: use a step's transaction only inside its body")
    }
}
