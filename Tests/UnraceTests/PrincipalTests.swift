import Foundation
import HTTPTypes
import Hummingbird
import Testing
import Unrace
import UnraceShop

@testable import UnraceHummingbird

/// How a principal's text becomes a scope: equal-looking identities are one client, and text the
/// shared name rule refuses is no client at all.
@Suite("Principals")
struct PrincipalTests {
    typealias P = Principal<BasicRequestContext>

    @Test("principals are their exact bytes: NFC and NFD spellings are two scopes, equal bytes one")
    func exactBytes() throws {
        let composed = try #require(P.scope(for: "caf\u{E9}@example.com"))
        let decomposed = try #require(P.scope(for: "cafe\u{301}@example.com"))
        #expect(composed != decomposed, "DESIGN: principals are built from the exact bytes a client sent")
        #expect(P.scope(for: "caf\u{E9}@example.com") == composed)
        #expect(P.scope(for: "cafe@example.com") != composed)
        #expect(composed.rawValue.hasPrefix("p:") && !composed.rawValue.contains("caf"))
        // The bound is on the bytes sent: 1,023 "e" and one decomposed é is 1,026 bytes.
        #expect(P.scope(for: String(repeating: "e", count: 1_023) + "e\u{301}") == nil)
        // And only on them: U+0958 is 3 bytes, and 6 in NFC (U+0915 U+093C). 341 of them are 1,023
        // bytes as sent, 2,046 in NFC; 342 are 1,026 bytes as sent.
        #expect(P.scope(for: String(repeating: "\u{958}", count: 341)) != nil)
        #expect(P.scope(for: String(repeating: "\u{958}", count: 342)) == nil)
        // At NFC's largest growth, three times: U+1D160 is 4 bytes and 12 in NFC, so 256 of them
        // are exactly 1,024 bytes as sent and 3,072 in NFC.
        #expect(P.scope(for: String(repeating: "\u{1D160}", count: 256)) != nil)
    }

    @Test(
        "a principal's scope cannot be named from outside: Scope(_:) and decoding refuse p:, so no caller can store an answer another client's key replays"
    )
    func principalScopesCannotBeForged() throws {
        let alice = try #require(P.scope(for: "alice"))
        let forged = #expect(throws: UnraceError.self) { try Scope(alice.rawValue) }
        #expect(forged?.code == .invalidScope)
        let decoded = #expect(throws: UnraceError.self) {
            try JSONDecoder().decode(Scope.self, from: Data(#"{"rawValue":"\#(alice.rawValue)"}"#.utf8))
        }
        #expect(decoded?.code == .invalidScope)
        // (A literal argument would pick the literal initializer, which traps: names in variables.)
        let bare = "p:"
        #expect(throws: UnraceError.self) { try Scope(bare) }
        // Other scopes with a colon stay valid; the prefix is exact (bytes).
        for text in ["P:x", "tenant:p:1", "p"] { #expect(try Scope(text).rawValue == text) }
    }

    @Test("NFC and NFD client ids over HTTP: the second is not a replay of the first", arguments: sqlBackends)
    func exactBytesOverHTTP(_ backend: SQLBackend) async throws {
        try await withShop(backend, ShopConfiguration()) { client, store, _ in
            var statuses: [Int] = []
            for id in ["caf\u{E9}", "cafe\u{301}"] {
                let answer = try await client.send(
                    .POST,
                    "/orders",
                    headers: [("Idempotency-Key", "same-key"), ("X-Client-Id", id)],
                    json: #"{"sku":"widget","quantity":1}"#
                )
                #expect(answer.header("Idempotent-Replayed") == nil, "\(answer.status) \(answer.body)")
                statuses.append(answer.status)
            }
            #expect(statuses == [201, 201])
            #expect(try await countRows(store, "shop_orders") == 2)
        }
    }

    @Test("a client id of `anonymous` does not share the keys of requests that send none", arguments: sqlBackends)
    func anonymousIsNotAnId(_ backend: SQLBackend) async throws {
        try await withShop(backend, ShopConfiguration()) { client, store, _ in
            for headers in [[("Idempotency-Key", "anon")], [("Idempotency-Key", "anon"), ("X-Client-Id", "anonymous")]] {
                let answer = try await client.send(.POST, "/orders", headers: headers, json: #"{"sku":"widget","quantity":1}"#)
                #expect(answer.status == 201 && answer.header("Idempotent-Replayed") == nil, "\(answer.status) \(answer.body)")
            }
            #expect(try await countRows(store, "shop_orders") == 2)
            // Requests without the header still share their keys with each other.
            let again = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "anon")],
                json: #"{"sku":"widget","quantity":1}"#
            )
            #expect(again.status == 201 && again.header("Idempotent-Replayed") == "true")
        }
    }

    @Test(
        "empty, over-long, NUL, control and format characters give no scope",
        arguments: [
            "", String(repeating: "a", count: 1_025), "a\u{0}b", "tab\there", "rtl\u{200F}", "zwj\u{200D}x",
        ]
    )
    func refused(_ text: String) {
        #expect(P.scope(for: text) == nil)
    }

    @Test("U+FFFD, what a lossy decoding leaves of bytes that were not UTF-8, gives no scope")
    func replacementCharacter() {
        #expect(P.scope(for: "caf\u{FFFD}") == nil)
        #expect(P.scope(for: "\u{FFFD}") == nil)
        #expect(P.scope(for: "café") != nil)
    }

    @Test(
        "a principal header sent twice is refused with 400, never read as either value (one may be the client's own, ahead of a gateway's)",
        arguments: [true, false]
    )
    func repeatedPrincipal(idempotency: Bool) async throws {
        var configuration = ShopConfiguration()
        configuration.idempotency = idempotency
        try await withShop(.sqlite, configuration) { client, store, _ in
            let answer = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "twice"), ("X-Client-Id", "mallory"), ("X-Client-Id", "alice")],
                json: #"{"sku":"widget","quantity":1}"#
            )
            #expect(answer.status == 400 && answer.problemCode == "principal_invalid", "\(answer.status) \(answer.body)")
            #expect(try await countRows(store, "shop_orders") == 0)
        }
        let headers: HTTPFields = [.init("X-Client-Id")!: "a"]
        #expect(PrincipalScope.headerValue(headers[values: .init("X-Client-Id")!]) == "a")
        var twice = headers
        twice.append(HTTPField(name: .init("X-Client-Id")!, value: "b"))
        #expect(PrincipalScope.headerValue(twice[values: .init("X-Client-Id")!]) == nil)
        #expect(PrincipalScope.headerValue([]) == nil)
    }

    @Test("two Latin-1 client ids differing in one byte, sent raw: both refused with 400, never one scope", arguments: sqlBackends)
    func latin1Clients(_ backend: SQLBackend) async throws {
        try await withLiveShop(backend) { client, store, _ in
            var answers: [Int?] = []
            for id: UInt8 in [0xE9, 0xE8] {  // "café" and "cafè" in Latin-1
                let body = #"{"sku":"widget","quantity":1}"#
                let connection = try RawConnection(port: client.port)
                try connection.send(
                    Array("POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \"latin1\"\r\nX-Client-Id: caf".utf8) + [id]
                        + Array(
                            "\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                                .utf8
                        )
                )
                let (bytes, _) = await connection.readUntilClosed(timeout: .seconds(20))
                answers.append(RawConnection.status(bytes))
                #expect(RawConnection.body(bytes).contains("principal_invalid"))
            }
            #expect(answers == [400, 400])
            #expect(try await countRows(store, "shop_orders") == 0)
        }
    }

    @Test("1,024 bytes is the longest principal")
    func longest() {
        #expect(P.scope(for: String(repeating: "a", count: 1_024)) != nil)
    }
}
