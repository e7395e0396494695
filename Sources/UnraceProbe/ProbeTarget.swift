import Foundation
import UnraceCore

/// The request a probe attacks, and where it may look: what `unrace probe` builds from its options.
///
/// A target is checked before anything is sent (``validate()``): every URL is `http` or `https`
/// on a loopback address or on a host named in ``allowedHosts``; header names are tokens and
/// values carry no control character but tab; bodies are at most ``bodyByteCountMaximum``. The prober never
/// follows a redirect: a 3xx is an answer like any other.
public struct ProbeTarget: Sendable {
    /// The largest request body sent: 1 MiB.
    public static let bodyByteCountMaximum = 1 << 20

    /// One request header.
    public struct Header: Sendable, Hashable, Codable {
        /// The field name, such as `Authorization`.
        public var name: String
        /// The field value.
        public var value: String

        /// A header.
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// How a fresh idempotency key is written in ``keyHeader``.
    public enum KeyFormat: String, Sendable, CaseIterable, Codable {
        /// A quoted UUID, the IETF draft's structured-field string: `"8e03978e-…"`.
        case quoted
        /// A bare UUID, as Stripe takes it: `8e03978e-…`.
        case bare
    }

    /// The URL of the request under attack, such as `http://127.0.0.1:8080/orders`.
    public var url: String
    /// Its method: `POST` unless set.
    public var method = "POST"
    /// Its body (JSON, usually); `Content-Type: application/json` is sent unless ``headers`` name one.
    public var body: [UInt8] = []
    /// Headers sent with every request (authorization, a client id).
    public var headers: [Header] = []
    /// The header that carries the idempotency key: `Idempotency-Key` unless set.
    public var keyHeader = "Idempotency-Key"
    /// How keys are written: ``KeyFormat/quoted`` unless set.
    public var keyFormat = KeyFormat.quoted
    /// The body the key-reuse probe sends under a used key. Without it the probe derives one from
    /// ``body``: the first integer field (by name) plus one, else the first string field with
    /// `-other-1` appended; a body with neither skips the probe.
    public var otherBody: [UInt8]?
    /// The top-level JSON field of an answer that names the created resource, as a fallback to
    /// `Location`: `id` unless set.
    public var identityField = "id"
    /// A GET that counts what the request creates (a number, a JSON array, or an object whose
    /// ``countField`` is a number), read before and after the probes that create.
    public var countURL: String?
    /// The field of ``countURL``'s JSON object that holds the count.
    public var countField: String?
    /// A resource whose GET answers an `ETag`: the lost-update probe writes it.
    public var etagURL: String?
    /// The method of the lost-update probe's writes: `PUT` unless set.
    public var writeMethod = "PUT"
    /// The body of the lost-update probe's writes (a JSON object); each writer changes its first
    /// string field (by name), else its first integer field, so the final GET shows whose write stands.
    public var writeBody: [UInt8]?
    /// Hosts besides loopback the prober may send to, named by the user (`--allow-host`).
    public var allowedHosts: [String] = []

    /// A target for `method url`.
    public init(url: String, method: String = "POST", body: [UInt8] = []) {
        self.url = url
        self.method = method
        self.body = body
    }

    /// Checks everything before a request is sent.
    /// - Throws: ``UnraceError/Code/invalidArgument`` naming the first bad option.
    public func validate() throws {
        for (url, option) in [(url, "the URL"), (countURL, "--count-url"), (etagURL, "--etag-url")] {
            guard let url else { continue }
            _ = try Self.checkedURL(url, option: option, allowedHosts: allowedHosts)
        }
        for method in [method, writeMethod] where !Self.isToken(method) {
            throw UnraceError(.invalidArgument, "a method must be an HTTP token such as POST", detail: Self.printable(method))
        }
        for header in headers + [Header(keyHeader, "k")] {
            guard Self.isToken(header.name) else {
                throw UnraceError(.invalidArgument, "a header name must be an HTTP token", detail: Self.printable(header.name))
            }
            // As AsyncHTTPClient checks at send time (RFC 9110 field-value): no control character
            // but tab, so a bad value is refused here, before anything is sent, naming only the header.
            guard !header.value.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }),
                header.value.utf8.count <= 8_192
            else {
                throw UnraceError(
                    .invalidArgument,
                    "a header value must be at most 8192 bytes without control characters (tab aside)",
                    detail: header.name
                )
            }
        }
        if headers.contains(where: { $0.name.lowercased() == keyHeader.lowercased() }) {
            throw UnraceError(.invalidArgument, "--header must not set the key header: the probe writes \(keyHeader) itself")
        }
        if let header = (headers + [Header(keyHeader, "k")]).first(where: { Self.reservedHeaders.contains($0.name.lowercased()) }) {
            throw UnraceError(
                .invalidArgument,
                "--header and --key-header must not name framing, routing or precondition headers: the probe writes them itself",
                detail: header.name
            )
        }
        if let otherBody, otherBody == body {
            throw UnraceError(.invalidArgument, "--other-body must differ from --body: it stands for another request under a used key")
        }
        for (bytes, option) in [(body, "--body"), (otherBody ?? [], "--other-body"), (writeBody ?? [], "--write-body")]
        where bytes.count > Self.bodyByteCountMaximum {
            throw UnraceError(.invalidArgument, "\(option) is larger than \(Self.bodyByteCountMaximum) bytes")
        }
        for (name, option) in [(identityField, "--id-field"), (countField ?? "count", "--count-field")]
        where name.isEmpty || name.utf8.count > 128 || name.contains("\0") {
            throw UnraceError(.invalidArgument, "\(option) must be 1 to 128 bytes without NUL")
        }
        if countField != nil, countURL == nil {
            throw UnraceError(.invalidArgument, "--count-field needs --count-url")
        }
        if writeBody != nil, etagURL == nil {
            throw UnraceError(.invalidArgument, "--write-body needs --etag-url")
        }
    }

    /// `url` parsed, `http` or `https`, on loopback or an allowed host.
    static func checkedURL(_ url: String, option: String, allowedHosts: [String]) throws -> URL {
        // No control characters or spaces anywhere (a URL that needs them percent-encodes them).
        guard !url.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }), let parsed = URL(string: url),
            let scheme = parsed.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = parsed.host, !host.isEmpty
        else {
            throw UnraceError(.invalidArgument, "\(option) must be an absolute http:// or https:// URL", detail: printable(url))
        }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        guard isLoopback(bare) || allowedHosts.contains(where: { $0.lowercased() == bare }) else {
            throw UnraceError(
                .invalidArgument,
                "\(option) names a host that is neither loopback nor allowed: name it with --allow-host to probe it",
                detail: bare
            )
        }
        return parsed
    }

    /// Headers a probe writes itself, or that would send its requests elsewhere: `Host`, the
    /// framing fields, the preconditions the lost-update probe sets.
    static let reservedHeaders: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "expect", "if-match", "if-none-match",
    ]

    /// `localhost`, `127.0.0.0/8` in canonical dotted decimal (1 to 3 digits per part, no leading
    /// zero: `127.0.0.08` is no address to `inet_pton`, so it would be looked up as a name) and `::1`.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127"
            && parts.allSatisfy { part in
                (1...3).contains(part.count) && part.utf8.allSatisfy { (0x30...0x39).contains($0) } && Int(part)! <= 255
                    && (part.count == 1 || part.first != "0")
            }
    }

    /// RFC 9110 `token`: visible ASCII except separators.
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 256
            && text.utf8.allSatisfy { byte in
                byte > 0x20 && byte < 0x7F && !"\"(),/:;<=>?@[\\]{}".utf8.contains(byte)
            }
    }

    /// At most 64 characters of `text`, control characters escaped, for an error's detail.
    static func printable(_ text: String) -> String {
        String(
            text.unicodeScalars.prefix(64).map {
                $0.properties.generalCategory == .control ? "\\u{\(String($0.value, radix: 16))}" : String($0)
            }.joined()
        )
    }
}
