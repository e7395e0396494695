import Foundation
import Testing
import Unrace

/// `unrace serve` against clients that stop half way: a body that stalls is answered 408 and its
/// connection closed, an idle connection is closed, and SIGTERM stops the server within its grace
/// period whatever a client holds open.
@Suite("Serve: timeouts and bounded shutdown", .timeLimit(.minutes(10)))
struct ServeTimeoutTests {
    /// Headers and 10 of 100 promised body bytes, then nothing.
    static let stalledUpload =
        "POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \"stall\"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sku\":\"w"

    static func serve(_ options: [String], captureErrors: Bool = false) async throws -> (ChildProcess, Int, URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("serve"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let server = try ChildProcess(
            ["serve", "--file", folder.appendingPathComponent("shop.sqlite").path, "--port", "0"] + options,
            captureErrors: captureErrors
        )
        try await server.waitFor("listening on")
        return (server, try #require(server.listeningPort), folder)
    }

    @Test("a body that stops half way is answered 408 and its connection closed, after --request-timeout")
    func stalledBody() async throws {
        let (server, port, folder) = try await Self.serve(["--request-timeout", "2", "--idle-timeout", "600"])
        defer {
            server.sendKill()
            try? FileManager.default.removeItem(at: folder)
        }
        let connection = try RawConnection(port: port)
        try connection.send(Self.stalledUpload)
        let (bytes, closed) = await connection.readUntilClosed(timeout: .seconds(30))
        #expect(RawConnection.status(bytes) == 408 && closed, "\(String(decoding: bytes, as: UTF8.self))")
        #expect(RawConnection.body(bytes).contains("request_timeout"))
        // The server still serves others.
        let health = try RawConnection(port: port)
        try health.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(RawConnection.status(await health.readUntilClosed(timeout: .seconds(30)).bytes) == 200)
    }

    @Test("a connection on which nothing arrives is closed after --idle-timeout")
    func idleConnection() async throws {
        let (server, port, folder) = try await Self.serve(["--idle-timeout", "2", "--request-timeout", "600"])
        defer {
            server.sendKill()
            try? FileManager.default.removeItem(at: folder)
        }
        let stalled = try RawConnection(port: port)
        try stalled.send(Self.stalledUpload)
        #expect(await stalled.readUntilClosed(timeout: .seconds(30)).closed, "a stalled upload's connection is closed")
        let silent = try RawConnection(port: port)
        #expect(await silent.readUntilClosed(timeout: .seconds(30)).closed, "a connection that never sends is closed")
    }

    @Test(
        "SIGTERM with nothing in flight stops serve with status 0 and no error logged: its built-in provider is shut down gracefully, not cancelled"
    )
    func quietShutdown() async throws {
        let (server, _, folder) = try await Self.serve([], captureErrors: true)
        defer {
            server.sendKill()
            try? FileManager.default.removeItem(at: folder)
        }
        #expect(await server.terminate() == 0)
        #expect(!server.printed.contains(" error "), "\(server.printed)")
    }

    @Test("SIGTERM stops serve within its grace period although a client holds a request open")
    func boundedShutdown() async throws {
        let (server, port, folder) = try await Self.serve(["--idle-timeout", "600", "--request-timeout", "600", "--shutdown-grace", "2"])
        defer {
            server.sendKill()
            try? FileManager.default.removeItem(at: folder)
        }
        let connection = try RawConnection(port: port)
        try connection.send(Self.stalledUpload)
        // The request is in the server's hands once its health can be read on another connection.
        let health = try RawConnection(port: port)
        try health.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(RawConnection.status(await health.readUntilClosed(timeout: .seconds(30)).bytes) == 200)
        let start = ContinuousClock.now
        let status = await server.terminateWithin(.seconds(30))
        #expect(status != nil, "serve was still running 30 s after SIGTERM")
        // Grace 2 s, then cancellation, which ends at most 5 s later: well under 30 s.
        #expect(ContinuousClock.now - start < .seconds(30))
        _ = await connection.readUntilClosed(timeout: .seconds(5))
    }

    @Test(
        "SIGTERM while serve still migrates its PostgreSQL schema (waiting on another replica's lock) is a shutdown: exit 0, no error",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func terminatedWhileSettingUp() async throws {
        let url = try TestPostgres.requireURL()
        try await withStore(.postgres) { holderStore, _ in
            let schema = uniqueName("sig")
            try await TestPostgres.execute("CREATE SCHEMA \(schema)")
            let holder = await SchemaKeyHolder(holderStore, schema: schema)
            let server = try ChildProcess(
                ["serve", "--database", url + (url.contains("?") ? "&" : "?") + "search_path=\(schema)", "--port", "0"],
                captureErrors: true
            )
            var status: Int32?
            do {
                try await holder.waitForWaiters(1)
                status = await server.terminateWithin(.seconds(30))
            } catch {
                server.sendKill()
                Issue.record(error)
            }
            try? await holder.release()
            try? await TestPostgres.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            #expect(status == 0, "\(String(describing: status)): \(server.printed.suffix(400))")
            #expect(!server.printed.contains("listening on"))
        }
    }
}
