import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import UnraceCore

/// Sends the probes' requests and records each as a ``ProbeExchange``: bounded in time and size,
/// never following a redirect, only to the URLs the target names.
struct ProbeClient: Sendable {
    /// The largest answer body read: 1 MiB; a larger one is recorded as an error.
    static let answerByteCountMaximum = 1 << 20

    /// A complete answer.
    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// Where the probe cuts the connection of a request.
    enum Cut: Sendable {
        /// It does not: the whole answer is read.
        case none
        /// As soon as the socket took the whole request, before any answer (plain HTTP only).
        case afterSending
        /// Once the answer's head has arrived: the body is never read.
        case afterHead
    }

    let http: HTTPClient
    let target: ProbeTarget
    let timeout: Duration
    let origin: ContinuousClock.Instant

    /// The request's headers: the target's, a JSON content type for a body when they name none,
    /// and the key when there is one.
    func headers(key: String?, hasBody: Bool, extra: [ProbeTarget.Header]) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for header in target.headers + extra { headers.add(name: header.name, value: header.value) }
        if hasBody, !headers.contains(name: "Content-Type") { headers.add(name: "Content-Type", value: "application/json") }
        if let key { headers.replaceOrAdd(name: target.keyHeader, value: key) }
        return headers
    }

    /// A fresh key as the target writes it, and a short label for it.
    func freshKey() -> String {
        let uuid = UUID().uuidString.lowercased()
        return target.keyFormat == .quoted ? "\"\(uuid)\"" : uuid
    }

    /// Sends one request and records it.
    func send(
        _ actor: String,
        method: String,
        url: String,
        key: (value: String, label: String)?,
        body: [UInt8],
        extraHeaders: [ProbeTarget.Header] = [],
        cut: Cut = .none
    ) async -> (exchange: ProbeExchange, answer: Answer?) {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        request.headers = headers(key: key?.value, hasBody: !body.isEmpty, extra: extraHeaders)
        let path = URL(string: url).map { $0.path.isEmpty ? "/" : $0.path } ?? url
        var exchange = ProbeExchange(
            actor: actor,
            request: "\(method) \(path)",
            key: key?.label ?? "none",
            status: nil,
            error: nil,
            location: nil,
            etag: nil,
            identity: nil,
            body: "",
            bodySHA256: "",
            started: elapsed(),
            ended: 0
        )
        if cut == .afterSending {
            // Written by hand, the connection closed once the socket took the last byte: the
            // server has the whole request and nobody reads its answer. Plain HTTP only: over TLS
            // the client does not say when the request is out.
            guard URL(string: url)?.scheme?.lowercased() == "http" else {
                exchange.error = "not run: a cut after sending needs an http:// URL"
                exchange.ended = elapsed()
                return (exchange, nil)
            }
            do {
                try await Self.sendAndClose(url: url, method: method, headers: request.headers, body: body, timeout: timeout)
                exchange.error = Self.cutAfterSendingText
            } catch {
                exchange.error = Self.describe(error)
            }
            exchange.ended = elapsed()
            return (exchange, nil)
        }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let answer: Answer?
        do {
            answer = try await bounded(request, readingBody: cut == .none)
            if cut == .afterHead { exchange.error = "the probe closed the connection after the answer's head" }
        } catch {
            answer = nil
            exchange.error = Self.describe(error)
        }
        exchange.ended = elapsed()
        if let answer {
            exchange.status = answer.status
            exchange.location = answer.headers.first(name: "Location")
            exchange.etag = answer.headers.first(name: "ETag")
            // One parse of the body serves both the identity and the digest (answers run to 1 MiB).
            let document = JSONValue.parse(answer.body)
            exchange.identity = identity(of: answer, document: document)
            exchange.body = String(decoding: answer.body.prefix(512), as: UTF8.self)
            exchange.bodySHA256 = Self.digest(answer.body, document: document)
        }
        return (exchange, answer)
    }

    /// What a cut after sending records.
    static let cutAfterSendingText = "the probe closed the connection after sending the request"

    /// The request's answer, the whole of it bounded by the timeout (the client's own deadline
    /// ends once the head has come; a server trickling its body would otherwise hold the probe).
    private func bounded(_ request: HTTPClientRequest, readingBody: Bool) async throws -> Answer {
        let (http, timeout) = (http, timeout)
        return try await withThrowingTaskGroup(of: Answer?.self) { group in
            group.addTask {
                let response = try await http.execute(request, timeout: .seconds(Int64(timeout.components.seconds)))
                var bytes: [UInt8] = []
                if readingBody {
                    var collected = try await response.body.collect(upTo: Self.answerByteCountMaximum)
                    bytes = collected.readBytes(length: collected.readableBytes) ?? []
                }
                return Answer(status: Int(response.status.code), headers: response.headers, body: bytes)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let answer = try await group.next()! else { throw HTTPClientError.deadlineExceeded }
            return answer
        }
    }

    /// The SHA-256 of an answer's body, hex — of its canonical JSON (sorted keys, no spaces) when
    /// it is JSON, so a replay that re-serialises the same document is the same answer.
    static func digest(_ body: [UInt8], document: JSONValue?) -> String {
        Fingerprint.bytes(document?.bytes ?? body).hex
    }

    /// The resource an answer names: its `Location` resolved against the target's URL, as path
    /// and query (`/orders/7` and `http://host/orders/7` are one resource; `/orders?id=7` and
    /// `/orders?id=8` are two), else the target's identity field of its JSON body; `nil` for an
    /// answer that is not a success. Past ``identityByteCountMaximum`` it is shortened, with a
    /// digest of the whole that keeps two long identities apart.
    func identity(of answer: Answer, document: JSONValue?) -> String? {
        fullIdentity(of: answer, document: document).map(Self.bounded)
    }

    /// The longest identity a report keeps as sent: 256 bytes (a server's 1 MiB `id` would be
    /// copied into every line of evidence, the timeline and the JSON).
    static let identityByteCountMaximum = 256

    static func bounded(_ identity: String) -> String {
        guard identity.utf8.count > identityByteCountMaximum else { return identity }
        // Cut by bytes: one Character (a letter and 500,000 combining marks) can be a megabyte.
        let head = String(decoding: identity.utf8.prefix(64), as: UTF8.self)
        return "\(head)… (\(identity.utf8.count) bytes, sha256 \(Fingerprint.text(identity).hex.prefix(16)))"
    }

    private func fullIdentity(of answer: Answer, document: JSONValue?) -> String? {
        guard (200..<300).contains(answer.status) else { return nil }
        if let location = answer.headers.first(name: "Location"), !location.isEmpty {
            guard let resolved = URL(string: location, relativeTo: URL(string: target.url))?.absoluteURL,
                let parts = URLComponents(url: resolved, resolvingAgainstBaseURL: false)
            else { return location }
            let path = parts.percentEncodedPath + (parts.percentEncodedQuery.map { "?" + $0 } ?? "")
            let origin = Self.origin(parts)
            return origin == URLComponents(string: target.url).map(Self.origin) ? path : origin + path
        }
        return document?[target.identityField]?.text
    }

    /// `scheme://host:port` of a URL.
    private static func origin(_ parts: URLComponents) -> String {
        "\(parts.scheme ?? "")://\(parts.host ?? "")\(parts.port.map { ":\($0)" } ?? "")"
    }

    /// The count behind ``ProbeTarget/countURL``, with the exchange that read it; `nil` without
    /// one or when the answer holds no count.
    func count(_ actor: String) async -> (value: Int64?, exchange: ProbeExchange)? {
        guard let url = target.countURL else { return nil }
        let (exchange, answer) = await send(actor, method: "GET", url: url, key: nil, body: [])
        guard let answer, answer.status == 200, let document = JSONValue.parse(answer.body) else { return (nil, exchange) }
        let value = target.countField.map { document[$0]?.count } ?? document.count
        return (value, exchange)
    }

    /// Writes one HTTP/1.1 request on a connection of its own and closes it as soon as the socket
    /// has taken the last byte: the server gets the whole request and nobody reads its answer.
    static func sendAndClose(url: String, method: String, headers: HTTPHeaders, body: [UInt8], timeout: Duration) async throws {
        guard let parsed = URLComponents(string: url), let host = parsed.host else { throw HTTPClientError.invalidURL }
        let port = parsed.port ?? 80
        // The path as written (percent-encoded), never decoded into the request line.
        var path = parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath
        if let query = parsed.percentEncodedQuery { path += "?" + query }
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw HTTPClientError.invalidURL }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host.contains(":") ? "[\(host)]" : host):\(port)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var buffer = ByteBuffer(string: head)
        buffer.writeBytes(body)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
        let channel = try await bootstrap.connect(host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port).get()
        // A server that never reads cannot hold the write past the timeout.
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) {
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        do {
            try await channel.writeAndFlush(buffer).get()
        } catch {
            try? await channel.close().get()
            throw error
        }
        try? await channel.close().get()
    }

    private func elapsed() -> Double {
        let duration = ContinuousClock.now - origin
        return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// A transport error in a few words.
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "no answer within the request timeout"
            case .remoteConnectionClosed: return "the server closed the connection without an answer"
            default: return "HTTP client error: \(error)"
            }
        }
        if let error = error as? NIOTooManyBytesError { return "the answer was larger than \(answerByteCountMaximum) bytes (\(error))" }
        return "\(type(of: error)): \(error)"
    }
}
