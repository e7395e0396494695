import Hummingbird
import Testing
@testable import UnraceHummingbird

/// How a principal's text becomes a scope: equal-looking identities are one client, and text the
/// shared name rule refuses is no client at all.
@Suite("Principals")
struct PrincipalTests {
    typealias P = Principal<BasicRequestContext>

    @Test("NFC and NFD spellings of one identity share a scope; different identities do not")
    func normalisation() throws {
        let composed = try #require(P.scope(for: "caf\u{E9}@example.com"))
        let decomposed = try #require(P.scope(for: "cafe\u{301}@example.com"))
        #expect(composed == decomposed)
        #expect(P.scope(for: "cafe@example.com") != composed)
        #expect(composed.rawValue.hasPrefix("p:") && !composed.rawValue.contains("caf"))
    }

    @Test("empty, over-long, NUL, control and format characters give no scope", arguments: [
        "", String(repeating: "a", count: 1_025), "a\u{0}b", "tab\there", "rtl\u{200F}", "zwj\u{200D}x",
    ])
    func refused(_ text: String) {
        #expect(P.scope(for: text) == nil)
    }

    @Test("1,024 bytes is the longest principal")
    func longest() {
        #expect(P.scope(for: String(repeating: "a", count: 1_024)) != nil)
    }
}
