import Testing
import UnraceCore

/// The name rule alone: what a name may contain, how long it may be, and which form is stored.
@Suite("Name rule")
struct NameRuleTests {
    static let rule = NameRule(kind: "record id", maximumByteCount: 8)

    static func refusal(_ text: String, rule: NameRule = rule, allowingReserved: Bool = false) -> UnraceError? {
        do {
            _ = try rule.validate(text, allowingReserved: allowingReserved)
            return nil
        } catch {
            return error as? UnraceError
        }
    }

    @Test(
        "a queue name with '/' is refused for a delivery's inbox event, a combining mark or variation selector after it included",
        arguments: ["a/b", "a/\u{301}b", "x/\u{FE0F}", "/\u{20DD}"]
    )
    func queueSlash(queue: String) {
        do {
            _ = try InboxEvent(queue: queue, messageID: "m", orderingKey: "k", sequence: 1, type: "T", payload: [])
            Issue.record("queue \(queue.unicodeScalars.map { String($0.value, radix: 16) }) should be refused")
        } catch {
            // Refused for its slash, not for another rule of names.
            #expect(
                (error as? UnraceError)?.code == .invalidEvent && (error as? UnraceError)?.message.contains("\"/\"") == true,
                "\(error)"
            )
        }
    }

    @Test("a name is returned in NFC: composed and decomposed spellings are one name")
    func normalization() throws {
        let composed = try Self.rule.validate("caf\u{E9}")
        let decomposed = try Self.rule.validate("cafe\u{301}")
        #expect(composed == decomposed)
        #expect(Array(decomposed.utf8) == Array("caf\u{E9}".utf8))
    }

    @Test(
        "empty names and control, format, private-use, unassigned and separator characters are refused with the rule's code, naming no name",
        arguments: ["", "a\u{0}b", "tab\t", "zw\u{200B}", "pua\u{E000}", "un\u{0378}", "ls\u{2028}", "ps\u{2029}", "del\u{7F}"]
    )
    func refused(_ text: String) throws {
        let error = try #require(Self.refusal(text))
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("record id "))
        if !text.isEmpty { #expect(!error.message.contains(text)) }
    }

    @Test("spaces and printable Unicode are allowed")
    func allowed() throws {
        #expect(try Self.rule.validate("a b") == "a b")
        #expect(try Self.rule.validate("\u{1F600}") == "\u{1F600}")
    }

    @Test("the bound is in UTF-8 bytes after normalization")
    func byteBound() {
        #expect(Self.refusal("12345678") == nil)
        #expect(Self.refusal("123456789")?.message.contains("9 bytes") == true)
        #expect(Self.refusal("\u{E9}\u{E9}\u{E9}\u{E9}") == nil)  // 8 bytes composed
        #expect(Self.refusal("e\u{301}e\u{301}e\u{301}e\u{301}") == nil)  // 12 bytes as given, 8 stored
        #expect(Self.refusal("\u{E9}\u{E9}\u{E9}\u{E9}\u{E9}") != nil)  // 10 bytes
    }

    @Test("a reserved prefix is refused to callers by bytes (a combining mark after it included) and allowed for derived names")
    func reservedPrefix() throws {
        let rule = NameRule.stream
        #expect(Self.refusal("$queue/x", rule: rule)?.code == .invalidEvent)
        #expect(Self.refusal("$\u{301}x", rule: rule)?.code == .invalidEvent)
        #expect(try rule.validate("$queue/x", allowingReserved: true) == "$queue/x")
        #expect(try rule.validate("queue$") == "queue$")
        // A derived name may run past the caller's bound, up to the derived maximum.
        let derived = "$" + String(repeating: "q", count: NameRule.derivedByteCountMaximum - 1)
        #expect(Self.refusal(derived, rule: rule, allowingReserved: true) == nil)
        #expect(Self.refusal(derived + "q", rule: rule, allowingReserved: true) != nil)
    }
}
