public import HTTPTypes
import UnraceCore

/// How the idempotency middlewares (``IdempotencyEngine``, and the Hummingbird and Vapor
/// adapters over it) treat requests. All defaults are stated on each property.
public struct IdempotencyConfiguration: Sendable {
    /// The largest request or response body the middleware reads or stores: 16 MiB.
    public static let bodyByteCountMaximum = 16 << 20
    /// The longest a retry may wait for the first request: 10 minutes.
    public static var waitMaximum: Duration { .seconds(600) }

    /// Methods that need a key; requests with other methods pass through untouched.
    /// Default: `POST` and `PATCH` (RFC 9110 makes `PUT` and `DELETE` idempotent already).
    public var methods: Set<HTTPRequest.Method> = [.post, .patch]
    /// Whether a request with one of ``methods`` and no key is refused with 400 (default `true`);
    /// when `false` it passes through without idempotency.
    public var requiresKey = true
    /// Which spellings of the `Idempotency-Key` header are accepted (default ``IdempotencyKey/Syntax/lenient``).
    public var keySyntax: IdempotencyKey.Syntax = .lenient
    /// What makes two requests the same request (default: method, path, `Content-Type`, canonical JSON body).
    public var fingerprint = RequestFingerprint()
    /// What a retry gets while the first request with its key is still running
    /// (default: waits up to 10 seconds, then replays).
    public var whileInProgress: WhileInProgress = .wait(upTo: .seconds(10))
    /// Which responses are stored and replayed; the others leave the key free for a retry and
    /// commit nothing the handler wrote. Default ``StoredStatuses/default``.
    public var storedStatuses: StoredStatuses = .default
    /// The largest request body read, in bytes (default 1 MiB; at most ``bodyByteCountMaximum``).
    /// A larger body gets 413 and nothing is stored.
    public var requestBodyByteCountLimit = 1 << 20
    /// The largest response body stored, in bytes (default 1 MiB; at most ``bodyByteCountMaximum``).
    /// A handler whose response is larger gets a 500 problem and nothing it wrote commits. (On
    /// Vapor, a streamed body of unknown size is read whole before it is measured.)
    public var responseBodyByteCountLimit = 1 << 20

    /// All defaults.
    public init() {}

    /// The configuration, checked against its bounds.
    /// - Throws: ``UnraceCore/UnraceError/Code/invalidConfiguration`` when a limit is out of range.
    public func validated() throws -> IdempotencyConfiguration {
        guard (0...Self.bodyByteCountMaximum).contains(requestBodyByteCountLimit),
            (0...Self.bodyByteCountMaximum).contains(responseBodyByteCountLimit)
        else { throw UnraceError(.invalidConfiguration, "body limits must be between 0 and \(Self.bodyByteCountMaximum) bytes") }
        if case .wait(let wait) = whileInProgress.mode, !(wait >= .zero && wait <= Self.waitMaximum) {
            throw UnraceError(.invalidConfiguration, "a wait must be between 0 and 10 minutes")
        }
        return self
    }
}

/// What a retry gets while the first request with its key still runs.
public struct WhileInProgress: Sendable, Hashable {
    package enum Mode: Sendable, Hashable {
        case conflict
        case wait(Duration)
    }
    package let mode: Mode

    /// Answer 409 `request_in_progress` at once, with `Retry-After: 1`.
    ///
    /// The first request claims the key in its own short transaction before the handler runs,
    /// so a retry can see it; the handler's writes and the stored response then commit together
    /// in a second transaction, under the claim's fencing token. A crash in between leaves the
    /// claim until its lease ends; the next retry then takes over.
    ///
    /// A retry learns that the key is in progress from a read that waits for no lock, decided
    /// as a claim is — fingerprint first (a different request gets 422 at once), then the lease,
    /// on the store's clock (the database's on PostgreSQL, so a process whose clock is off
    /// neither answers 409 for a dead holder's key nor waits out a live request). A retry that
    /// reads just before the first claims waits for the first's transaction and replays its
    /// response. A response that is not
    /// stored (a 5xx) releases the claim but keeps its fingerprint: a retry must send the same
    /// request (a different one gets 422 until the record expires).
    public static let conflict = WhileInProgress(mode: .conflict)

    /// Wait for the first request's response, then replay it.
    ///
    /// The claim, the handler's writes and the stored response are one transaction: a retry
    /// waits on the database (SQLite's writer lock, PostgreSQL's row lock on the claim) until the
    /// first commits, and the first never costs a second transaction. That wait lasts as long as
    /// the first handler runs; `timeout` bounds only the wait for a claim some *other* holder
    /// committed (a `.conflict`-mode request or a two-phase `begin` on the same key), after which
    /// the retry gets 409. Keep handlers short, or use ``conflict`` when retries must not wait.
    public static func wait(upTo timeout: Duration) -> WhileInProgress { WhileInProgress(mode: .wait(timeout)) }
}

/// Which responses are stored for replay.
public struct StoredStatuses: Sendable {
    let stores: @Sendable (HTTPResponse.Status) -> Bool

    /// A rule of your own.
    public static func custom(_ stores: @escaping @Sendable (HTTPResponse.Status) -> Bool) -> StoredStatuses {
        StoredStatuses(stores: stores)
    }

    /// 1xx–4xx are terminal and stored, except 408, 425 and 429, which ask the client to try
    /// again; 5xx are retryable and never stored.
    public static let `default` = StoredStatuses { status in
        status.kind != .serverError && ![408, 425, 429].contains(status.code)
    }

    /// Whether a response with `status` is stored.
    public func contains(_ status: HTTPResponse.Status) -> Bool { stores(status) }
}
