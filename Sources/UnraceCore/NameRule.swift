import Foundation

/// The one rule every stored name follows, per kind: checked the same way at creation and at use,
/// on every store.
///
/// A valid name is 1 to ``maximumByteCount`` bytes of UTF-8 in Unicode normalization form C
/// (NFC), with no control, format, surrogate, private-use or unassigned character and no line or
/// paragraph separator (spaces are allowed).
/// ``validate(_:)`` returns the NFC form, which is what stores keep and compare, so two names are
/// equal on every store exactly when they are equal as Swift strings (`"café"` composed and
/// decomposed are one name).
///
/// Why: SQLite cuts a bound string at its first NUL, PostgreSQL refuses NUL outright, and SQL
/// compares bytes while Swift compares canonical equivalence. A name that passes this rule means
/// the same thing in memory, in SQLite and in PostgreSQL.
public struct NameRule: Sendable, Hashable {
    /// What the name is, for messages: `"record id"`, `"hold key"`.
    public let kind: String
    /// The longest name, in UTF-8 bytes after normalization.
    public let maximumByteCount: Int
    /// The error code a refused name gets.
    public let code: UnraceError.Code
    /// A prefix that names of this kind may not start with: it marks the names Unrace derives
    /// for itself (a queue's inbox streams and event ids start with `$`), so that no caller can
    /// write into them. `nil` for most kinds.
    public let reservedPrefix: String?

    /// A rule for one kind of name.
    public init(kind: String, maximumByteCount: Int = 255, code: UnraceError.Code = .invalidArgument, reservedPrefix: String? = nil) {
        self.kind = kind
        self.maximumByteCount = maximumByteCount
        self.code = code
        self.reservedPrefix = reservedPrefix
    }

    /// The longest name Unrace derives in a reserved namespace: `$`, a queue name (64 bytes),
    /// `/` and a message id (190 bytes).
    public static var derivedByteCountMaximum: Int { 256 }

    /// Checks `text` and returns its NFC form.
    /// - Throws: ``UnraceError`` with ``code``, naming the kind of name and what was refused
    ///   (never the name itself).
    public func validate(_ text: String) throws -> String {
        try validate(text, allowingReserved: false)
    }

    /// Checks `text` and returns its NFC form; with `allowingReserved`, a name in the reserved
    /// namespace (``reservedPrefix``) is accepted too — for reads and operator actions on names
    /// Unrace derived, never for a write a caller names.
    /// - Throws: ``UnraceError`` with ``code``.
    public func validate(_ text: String, allowingReserved: Bool) throws -> String {
        guard !text.isEmpty else {
            throw UnraceError(code, "\(kind) is empty; it must be 1 to \(maximumByteCount) bytes")
        }
        // Printable ASCII, the common case, is already NFC and needs no Unicode property lookups.
        let isPrintableASCII = text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        var normalized = text
        if !isPrintableASCII {
            if let refused = text.unicodeScalars.first(where: { Self.refusal($0) != nil }) {
                throw UnraceError(
                    code,
                    "\(kind) contains \(Self.refusal(refused)!) U+\(String(refused.value, radix: 16, uppercase: true).leftPadded(4)); only printable characters are allowed"
                )
            }
            normalized = text.precomposedStringWithCanonicalMapping
        }
        // Bytes, not characters: `String.hasPrefix` compares graphemes, so "$" followed by a
        // combining mark would not count as starting with "$", though its bytes do.
        let isReserved = reservedPrefix.map { normalized.utf8.starts(with: $0.utf8) } ?? false
        if !allowingReserved, isReserved, let reservedPrefix {
            throw UnraceError(
                code,
                "\(kind) starts with \"\(reservedPrefix)\", which is reserved for the names Unrace derives itself (a queue's inbox streams and event ids)"
            )
        }
        let count = normalized.utf8.count
        // A derived name is its parts, each within its own bound, and a separator: it may be
        // longer than a name a caller chooses.
        guard count <= maximumByteCount || (allowingReserved && isReserved && count <= Self.derivedByteCountMaximum) else {
            throw UnraceError(code, "\(kind) is \(count) bytes; the maximum is \(maximumByteCount)")
        }
        return normalized
    }

    /// Why a scalar is refused, as a noun phrase, or `nil` if it is allowed.
    package static func refusal(_ scalar: Unicode.Scalar) -> String? {
        switch scalar.properties.generalCategory {
        case .control: "a control character"
        case .format: "a format character"
        case .surrogate: "a surrogate"
        case .privateUse: "a private-use character"
        case .unassigned: "an unassigned code point"
        case .lineSeparator: "a line separator"
        case .paragraphSeparator: "a paragraph separator"
        default: nil
        }
    }
}

extension NameRule {
    /// Operation keys: ``UnraceError/Code/invalidKey``.
    public static let operationKey = NameRule(kind: "operation key", code: .invalidKey)
    /// A ``Records`` collection.
    public static let collection = NameRule(kind: "collection")
    /// A record's id.
    public static let recordID = NameRule(kind: "record id")
    /// A counter's name.
    public static let counterName = NameRule(kind: "counter name")
    /// A quota's name.
    public static let quotaName = NameRule(kind: "quota name")
    /// A resource's name.
    public static let resourceName = NameRule(kind: "resource name")
    /// A hold's key.
    public static let holdKey = NameRule(kind: "hold key")
    /// A ledger account id.
    public static let accountID = NameRule(kind: "account id")
    /// A ledger transfer id (also a pending id a post or void names).
    public static let transferID = NameRule(kind: "transfer id")
    /// An inbox event id: ``UnraceError/Code/invalidEvent``. Ids starting with `$` are
    /// reserved for the events a ``InboxEvent/reservedPrefix`` names (a queue's deliveries).
    public static let eventID = NameRule(kind: "event id", code: .invalidEvent, reservedPrefix: InboxEvent.reservedPrefix)
    /// An inbox stream: ``UnraceError/Code/invalidEvent``. Streams starting with `$` are
    /// reserved for the streams Unrace derives (a queue's ordering keys).
    public static let stream = NameRule(kind: "event stream", code: .invalidEvent, reservedPrefix: InboxEvent.reservedPrefix)
    /// An inbox event type: ``UnraceError/Code/invalidEvent``.
    public static let eventType = NameRule(kind: "event type", code: .invalidEvent)
    /// A lifecycle entity id: ``UnraceError/Code/invalidEvent``.
    public static let entity = NameRule(kind: "entity id", code: .invalidEvent)
    /// The name a lifecycle guard stores states under (1 to 64 bytes).
    public static let lifecycleName = NameRule(kind: "lifecycle name", maximumByteCount: 64)
    /// A lifecycle state or event name (1 to 64 bytes): ``UnraceError/Code/invalidLifecycle``.
    public static let lifecycleWord = NameRule(kind: "lifecycle state or event", maximumByteCount: 64, code: .invalidLifecycle)
    /// A queue's name (1 to 64 bytes; ``MessageQueue`` also refuses `/`, which separates the
    /// queue from the message id and the ordering key in inbox event ids and streams).
    public static let queueName = NameRule(kind: "queue name", maximumByteCount: 64)
    /// A queue message's id, unique per queue (1 to 190 bytes, so that `queue/id` is an inbox event id).
    public static let messageID = NameRule(kind: "message id", maximumByteCount: 190)
    /// A message's ordering key (1 to 190 bytes): its deliveries belong to the inbox stream
    /// `queue/key`.
    public static let orderingKey = NameRule(kind: "ordering key", maximumByteCount: 190)
    /// The name of a worker that leases messages (1 to 128 bytes).
    public static let workerName = NameRule(kind: "worker name", maximumByteCount: 128)
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
