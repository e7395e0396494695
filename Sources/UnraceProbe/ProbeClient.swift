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
        /// As soon as the request's body has been handed to the connection, before any answer.
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
        _ actor: String, method: String, url: String, key: (value: String, label: String)?, body: [UInt8],
        extraHeaders: [ProbeTarget.Header] = [], cut: Cut = .none
    ) async -> (exchange: ProbeExchange, answer: Answer?) {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        request.headers = headers(key: key?.value, hasBody: !body.isEmpty, extra: extraHeaders)
        let path = URL(string: url).map { $0.path.isEmpty ? "/" : $0.path } ?? url
        var exchange = ProbeExchange(
            actor: actor, request: "\(method) \(path)", key: key?.label ?? "none", status: nil, error: nil, location: nil, etag: nil,
            identity: nil, body: "", started: elapsed(), ended: 0
        )
        if cut == .afterSending, URL(string: url)?.scheme?.lowercased() == "http" {
            // Plain HTTP: the request written by hand, the connection closed once the socket took it.
            do {
                try await Self.sendAndClose(url: url, method: method, headers: request.headers, body: body, timeout: timeout)
                exchange.error = "the probe closed the connection after sending the request"
            } catch {
                exchange.error = Self.describe(error)
            }
            exchange.ended = elapsed()
            return (exchange, nil)
        }
        let sent = AsyncStream<Void>.makeStream()
        if cut == .afterSending {
            // TLS: the body's last chunk handed to the client is as close to "sent" as it tells.
            request.body = .stream(SentOnce(bytes: body, sent: sent.continuation), length: .known(Int64(body.count)))
        } else if !body.isEmpty {
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let http = http
        let timeout = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        let answer: Answer?
        do {
            let task = Task { () -> (HTTPClientResponse, [UInt8]?) in
                let response = try await http.execute(request, timeout: timeout)
                if cut == .afterHead { return (response, nil) }
                var collected = try await response.body.collect(upTo: Self.answerByteCountMaximum)
                return (response, collected.readBytes(length: collected.readableBytes))
            }
            if cut == .afterSending {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { for await _ in sent.stream { break } }
                    group.addTask { _ = await task.result }
                    await group.next()
                    group.cancelAll()
                }
                task.cancel()
            }
            let (response, bytes) = try await task.value
            answer = Answer(status: Int(response.status.code), headers: response.headers, body: bytes ?? [])
            if bytes == nil { exchange.error = "the probe closed the connection after the answer's head" }
        } catch is CancellationError where cut == .afterSending {
            answer = nil
            exchange.error = "the probe closed the connection after sending the request"
        } catch let error as HTTPClientError where cut == .afterSending && error == .cancelled {
            answer = nil
            exchange.error = "the probe closed the connection after sending the request"
        } catch {
            answer = nil
            exchange.error = Self.describe(error)
        }
        exchange.ended = elapsed()
        if let answer {
            exchange.status = answer.status
            exchange.location = answer.headers.first(name: "Location")
            exchange.etag = answer.headers.first(name: "ETag")
            exchange.identity = identity(of: answer)
            exchange.body = String(decoding: answer.body.prefix(512), as: UTF8.self)
        }
        return (exchange, answer)
    }

    /// The resource an answer names: its `Location`, else the target's identity field of its
    /// JSON body; `nil` for an answer that is not a success.
    func identity(of answer: Answer) -> String? {
        guard (200..<300).contains(answer.status) else { return nil }
        if let location = answer.headers.first(name: "Location"), !location.isEmpty { return location }
        return JSONValue.parse(answer.body)?[target.identityField]?.text
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
        guard let parsed = URL(string: url), let host = parsed.host else { throw HTTPClientError.invalidURL }
        let port = parsed.port ?? 80
        var path = parsed.path.isEmpty ? "/" : parsed.path
        if let query = parsed.query { path += "?" + query }
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

/// A request body that says when the connection has taken all of it.
private struct SentOnce: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let bytes: [UInt8]
    let sent: AsyncStream<Void>.Continuation

    func makeAsyncIterator() -> Iterator { Iterator(bytes: bytes, sent: sent) }

    struct Iterator: AsyncIteratorProtocol {
        var bytes: [UInt8]?
        let sent: AsyncStream<Void>.Continuation

        init(bytes: [UInt8], sent: AsyncStream<Void>.Continuation) {
            self.bytes = bytes
            self.sent = sent
        }

        mutating func next() async -> ByteBuffer? {
            // The client stops asking once it has the known length: the last chunk is the signal.
            defer { sent.yield() }
            guard let chunk = bytes else { return nil }
            bytes = nil
            return chunk.isEmpty ? nil : ByteBuffer(bytes: chunk)
        }
    }
}
