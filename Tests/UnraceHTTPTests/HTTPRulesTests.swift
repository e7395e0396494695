import Foundation
import HTTPTypes
import Testing
import UnraceCore

@testable import UnraceHTTP

@Suite("Idempotency-Key header")
struct IdempotencyKeyTests {
    @Test("an sf-string is unquoted and unescaped; a bare value is accepted unless strict")
    func parses() throws {
        #expect(try IdempotencyKey(parsing: "\"8e03978e-40d5\"").value == "8e03978e-40d5")
        #expect(try IdempotencyKey(parsing: #""a \"b\" \\c""#).value == #"a "b" \c"#)
        #expect(try IdempotencyKey(parsing: "  \"padded\"  ").value == "padded")
        #expect(try IdempotencyKey(parsing: "8e03978e-40d5").value == "8e03978e-40d5")
        #expect(throws: HTTPProblem.self) { try IdempotencyKey(parsing: "8e03978e-40d5", syntax: .strict) }
        #expect(try IdempotencyKey(parsing: "\"k\"", syntax: .strict).value == "k")
    }

    @Test(
        "malformed, empty, over-long, listed and non-ASCII keys are refused with idempotency_key_invalid",
        arguments: [
            "", "\"\"", "\"unterminated", "\"a\" trailing", "\"a\", \"b\"", "a,b", "a;b", "\"bad \\x escape\"",
            "\"caf\u{E9}\"", "\"tab\there\"", "\"nul\u{0}\"", "a b", String(repeating: "k", count: 256),
            "\"" + String(repeating: "k", count: 256) + "\"",
        ]
    )
    func refuses(_ header: String) {
        #expect {
            try IdempotencyKey(parsing: header)
        } throws: { error in
            (error as? HTTPProblem)?.code == .idempotencyKeyInvalid && (error as? HTTPProblem)?.status == .badRequest
        }
    }

    @Test("255 bytes is the longest key")
    func longest() throws {
        #expect(try IdempotencyKey(parsing: String(repeating: "k", count: 255)).value.utf8.count == 255)
    }

    @Test("the description does not show the key")
    func description() throws {
        #expect(!String(describing: try IdempotencyKey(parsing: "secret-key")).contains("secret"))
    }
}

@Suite("Entity tags and conditions")
struct EntityTagTests {
    @Test("a version's tag is strong and round-trips; weak and strong compare per RFC 9110")
    func comparison() throws {
        let seven = EntityTag(version: 7)
        #expect(seven.description == "\"7\"")
        #expect(seven.version == 7)
        let weak = try #require(EntityTag(opaque: "7", isWeak: true))
        #expect(weak.description == "W/\"7\"")
        #expect(weak.version == nil)
        #expect(!weak.strongMatches(seven))
        #expect(weak.weakMatches(seven))
        #expect(EntityTag(opaque: "07")?.version == nil)  // not a tag this layer made
    }

    @Test("If-Match holds only for a strongly matching tag or * on an existing resource")
    func ifMatch() throws {
        let current = EntityTag(version: 3)
        #expect(try EntityTagCondition(parsing: "\"3\"").ifMatchHolds(current: current))
        #expect(try EntityTagCondition(parsing: "\"1\", \"3\"").ifMatchHolds(current: current))
        #expect(try !EntityTagCondition(parsing: "W/\"3\"").ifMatchHolds(current: current))
        #expect(try !EntityTagCondition(parsing: "\"4\"").ifMatchHolds(current: current))
        #expect(try EntityTagCondition(parsing: "*").ifMatchHolds(current: current))
        #expect(try !EntityTagCondition(parsing: "*").ifMatchHolds(current: nil))
    }

    @Test("If-None-Match fails for * on an existing resource and for a weakly matching tag")
    func ifNoneMatch() throws {
        let current = EntityTag(version: 3)
        #expect(try !EntityTagCondition(parsing: "*").ifNoneMatchHolds(current: current))
        #expect(try EntityTagCondition(parsing: "*").ifNoneMatchHolds(current: nil))
        #expect(try !EntityTagCondition(parsing: "W/\"3\"").ifNoneMatchHolds(current: current))
        #expect(try EntityTagCondition(parsing: "\"4\"").ifNoneMatchHolds(current: current))
    }

    @Test("a write's conditions: create, compare-and-set on a named version, or replace whatever exists for *")
    func writeConditions() throws {
        func decide(_ ifMatch: String?, _ ifNoneMatch: String?, _ current: Int64?, required: Bool = true) throws -> WritePrecondition {
            try RequestConditions(ifMatch: ifMatch, ifNoneMatch: ifNoneMatch).forWrite(currentVersion: current, requiresIfMatch: required)
        }
        func code(_ body: () throws -> WritePrecondition) -> String? {
            do {
                _ = try body()
                return nil
            } catch let problem as HTTPProblem { return problem.code.rawValue } catch { return "\(error)" }
        }
        #expect(try decide(nil, nil, nil) == .create)
        #expect(try decide(nil, "*", nil) == .create)
        #expect(try decide("\"3\"", nil, 3) == .replace(expectedVersion: 3))
        #expect(try decide("\"2\", \"3\"", nil, 3) == .replace(expectedVersion: 3))
        #expect(try decide("*", nil, 3) == .replaceExisting, "* asks only that the resource exists")
        #expect(try decide(nil, nil, 3, required: false) == .replaceExisting)
        #expect(code { try decide(nil, nil, 3) } == "precondition_required")
        #expect(code { try decide("*", nil, nil) } == "precondition_failed")
        #expect(code { try decide("\"2\"", nil, 3) } == "precondition_failed")
        #expect(code { try decide("W/\"3\"", nil, 3) } == "precondition_failed", "If-Match compares strongly")
        #expect(code { try decide(nil, "*", 3) } == "precondition_failed")
        #expect(code { try decide("x", nil, 3) } == "condition_invalid")
    }

    @Test("a read's If-None-Match: 304 for the current version (weakly) or * on an existing resource")
    func readConditions() throws {
        func decide(_ ifMatch: String?, _ ifNoneMatch: String?, _ current: Int64?) throws -> ReadPrecondition {
            try RequestConditions(ifMatch: ifMatch, ifNoneMatch: ifNoneMatch).forRead(currentVersion: current)
        }
        #expect(try decide(nil, "\"3\"", 3) == .notModified)
        #expect(try decide(nil, "W/\"3\"", 3) == .notModified)
        #expect(try decide(nil, "*", 3) == .notModified)
        #expect(try decide(nil, "\"2\"", 3) == .send)
        #expect(try decide(nil, "*", nil) == .send)
        #expect(try decide(nil, nil, 3) == .send)
        #expect(throws: HTTPProblem.self) { try decide("\"2\"", nil, 3) }
    }

    @Test(
        "malformed conditions are refused with condition_invalid",
        arguments: [
            "", "3", "\"3", "* , \"3\"", "\"3\" \"4\"", "W/3", "\"caf\u{E9}\"", "\"a b\"",
            String(repeating: "\"1\",", count: 65),
        ]
    )
    func malformed(_ header: String) {
        #expect {
            try EntityTagCondition(parsing: header)
        } throws: { error in (error as? HTTPProblem)?.code == .conditionInvalid }
    }
}

@Suite("Request fingerprints")
struct RequestFingerprintTests {
    let rule = RequestFingerprint()

    func request(_ method: HTTPRequest.Method = .post, _ path: String = "/orders", contentType: String? = "application/json") -> HTTPRequest
    {
        var fields = HTTPFields()
        if let contentType { fields[.contentType] = contentType }
        return HTTPRequest(method: method, scheme: "http", authority: "x", path: path, headerFields: fields)
    }

    @Test("JSON bodies equal up to key order and whitespace are the same request")
    func canonicalJSON() {
        let a = rule.fingerprint(of: request(), body: Data(#"{"a":1, "b":[2,3]}"#.utf8))
        let b = rule.fingerprint(of: request(), body: Data(#"{ "b":[2,3],"a":1 }"#.utf8))
        #expect(a == b)
        // Only a body declared JSON: a text/plain or octet-stream route may keep the exact bytes.
        for contentType in ["text/plain", "application/octet-stream", nil] as [String?] {
            let c = rule.fingerprint(of: request(contentType: contentType), body: Data(#"{"a":1, "b":[2,3]}"#.utf8))
            let d = rule.fingerprint(of: request(contentType: contentType), body: Data(#"{ "b":[2,3],"a":1 }"#.utf8))
            #expect(c != d, "\(contentType ?? "no Content-Type")")
        }
        for contentType in ["Application/JSON; charset=utf-8", "application/merge-patch+json"] {
            let c = rule.fingerprint(of: request(contentType: contentType), body: Data(#"{"a":1, "b":[2,3]}"#.utf8))
            let d = rule.fingerprint(of: request(contentType: contentType), body: Data(#"{ "b":[2,3],"a":1 }"#.utf8))
            #expect(c == d, "\(contentType)")
        }
        let raw = RequestFingerprint(canonicalJSON: false)
        #expect(
            raw.fingerprint(of: request(), body: Data(#"{"a":1}"#.utf8)) != raw.fingerprint(of: request(), body: Data(#"{ "a":1}"#.utf8))
        )
    }

    @Test("canonical JSON keeps every number and string exactly; only member order and whitespace are ignored")
    func canonicalPrecision() {
        func same(_ a: String, _ b: String) -> Bool {
            rule.fingerprint(of: request(), body: Data(a.utf8)) == rule.fingerprint(of: request(), body: Data(b.utf8))
        }
        #expect(!same(#"{"amount":9007199254740993}"#, #"{"amount":9007199254740992}"#))
        #expect(!same(#"{"amount":1.0}"#, #"{"amount":1}"#))
        #expect(!same(#"{"a":1,"a":2}"#, #"{"a":2,"a":1}"#))
        #expect(!same(#"{"s":"A"}"#, #"{"s":"B"}"#))
        #expect(same(#"{"b":{"y":[1, 2],"x":null},"a":true}"#, #" { "a" : true , "b" : { "x" : null, "y" : [ 1 , 2 ] } } "#))
        #expect(same("[1,2]", " [1, 2] "))
        #expect(!same("[1,2]", "[2,1]"))
        // Not JSON (or nested past the bound): the bytes themselves.
        #expect(!same("{\"a\":1", "{\"a\": 1"))
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(!same(deep, " " + deep))
    }

    @Test("canonical JSON compares keys and strings by their decoded values, and keeps repeated keys' order")
    func canonicalEscapes() {
        func same(_ a: String, _ b: String) -> Bool {
            rule.fingerprint(of: request(), body: Data(a.utf8)) == rule.fingerprint(of: request(), body: Data(b.utf8))
        }
        // One key spelled two ways is one key: no spurious 422.
        #expect(same(#"{"a":1}"#, #"{"\u0061":1}"#))
        #expect(same(#"{"s":"\u00e9\/x"}"#, #"{"s":"é/x"}"#))
        #expect(same(#"{"emoji":"\ud83d\ude00"}"#, #"{"emoji":"😀"}"#))
        #expect(same(#"{"q":"a\"b"}"#, #"{"q":"a\u0022b"}"#))
        #expect(same(#"{"c":"\u000A"}"#, #"{"c":"\n"}"#))
        // A key repeated under two spellings, in two orders: two requests, not one replayed for the other.
        #expect(!same(#"{"quantity":1,"quantit\u0079":3}"#, #"{"quantit\u0079":3,"quantity":1}"#))
        #expect(!same(#"{"quantity":1,"quantity":3}"#, #"{"quantity":3,"quantity":1}"#))
        // Sorted by the decoded key, not its escaped bytes: "\u0062" is "b", after "a".
        #expect(same(#"{"\u0062":2,"a":1}"#, #"{"a":1,"b":2}"#))
        // Lone surrogates stay distinct, in one spelling; other differences stay.
        #expect(same(#"{"x":"\uD800"}"#, #"{"x":"\ud800"}"#))
        #expect(!same(#"{"x":"\ud800"}"#, #"{"x":"\ud801"}"#))
        #expect(!same(#"{"s":"é"}"#, #"{"s":"e\u0301"}"#), "no Unicode normalisation: the bytes a handler decodes differ")
        // Not JSON: a bad escape, invalid UTF-8, a raw control character — hashed as bytes.
        #expect(!same(#"{"a":"\x"}"#, #"{ "a":"\x"}"#))
        #expect(!same("{\"a\":\"\u{1}\"}", "{ \"a\":\"\u{1}\"}"))
        let invalid: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(rule.fingerprint(of: request(), body: Data(invalid)) != rule.fingerprint(of: request(), body: Data([0x20] + invalid)))
    }

    @Test("a 1 MiB string under 255 levels of nesting is canonicalised whole, written once")
    func canonicalDeep() {
        let text = String(repeating: "x", count: 1 << 20)
        let deep = String(repeating: #"{"k":"#, count: 255) + "\"\(text)\"" + String(repeating: "}", count: 255)
        let spaced = String(repeating: #"{ "k" : "#, count: 255) + "\"\(text)\"" + String(repeating: " }", count: 255)
        let canonical = RequestFingerprint.canonical(Data(spaced.utf8))
        #expect(canonical == Data(deep.utf8))
        #expect(rule.fingerprint(of: request(), body: Data(deep.utf8)) == rule.fingerprint(of: request(), body: Data(spaced.utf8)))
    }

    @Test("method, path, query, chosen headers and body each make a different request")
    func parts() {
        let base = rule.fingerprint(of: request(), body: Data("{}".utf8))
        #expect(rule.fingerprint(of: request(.patch), body: Data("{}".utf8)) != base)
        #expect(rule.fingerprint(of: request(.post, "/orders?x=1"), body: Data("{}".utf8)) != base)
        #expect(rule.fingerprint(of: request(contentType: "text/plain"), body: Data("{}".utf8)) != base)
        #expect(rule.fingerprint(of: request(contentType: nil), body: Data("{}".utf8)) != base)
        var conditional = request()
        conditional.headerFields[.ifMatch] = "\"2\""
        #expect(rule.fingerprint(of: conditional, body: Data("{}".utf8)) != base)
        #expect(rule.fingerprint(of: request(), body: Data(#"{"a":1}"#.utf8)) != base)
        // Length prefixes: moving bytes between parts never collides.
        #expect(
            rule.fingerprint(of: request(.post, "/ab"), body: Data("c".utf8))
                != rule.fingerprint(of: request(.post, "/a"), body: Data("bc".utf8))
        )
    }

    @Test("Host in the chosen headers names the authority wherever the server put it: two hosts are two requests on every framework")
    func hostIsTheAuthority() throws {
        let hosted = RequestFingerprint(headers: [.contentType, try #require(HTTPField.Name("Host"))])
        func request(authority: String?, hostField: String?) -> HTTPRequest {
            var fields: HTTPFields = [.contentType: "application/json"]
            if let hostField { fields[try! #require(HTTPField.Name("Host"))] = hostField }
            return HTTPRequest(method: .post, scheme: "http", authority: authority, path: "/orders", headerFields: fields)
        }
        let body = Data("{}".utf8)
        // As NIOHTTPTypes (Hummingbird) hands requests over: Host moved to the authority.
        let a = hosted.fingerprint(of: request(authority: "a.example", hostField: nil), body: body)
        let b = hosted.fingerprint(of: request(authority: "b.example", hostField: nil), body: body)
        #expect(a != b)
        // As Vapor hands them over: Host a field, no authority. The same host, the same request.
        #expect(hosted.fingerprint(of: request(authority: nil, hostField: "a.example"), body: body) == a)
        // The default rule leaves the host out.
        #expect(
            rule.fingerprint(of: request(authority: "a.example", hostField: nil), body: body)
                == rule.fingerprint(of: request(authority: "b.example", hostField: nil), body: body)
        )
    }
}

@Suite("Problem details and stored responses")
struct ProblemAndStoredResponseTests {
    @Test("a bare status becomes its problem; unhandled errors are 503 when retryable, else 500, never their text")
    func problemsForStatusesAndErrors() {
        #expect(HTTPProblem(status: .notFound).code == .notFound)
        #expect(HTTPProblem(status: .methodNotAllowed).code == .methodNotAllowed)
        #expect(HTTPProblem(status: .init(code: 418)).code.rawValue == "http_418")
        let retryable = HTTPProblem.unhandled(UnraceError(.storeUnavailable, "down", detail: "key k-secret"))
        #expect(retryable.status == .serviceUnavailable && retryable.retryAfterSeconds == 1)
        #expect(!String(decoding: retryable.jsonBody(), as: UTF8.self).contains("k-secret"))
        for code in [UnraceError.Code.databaseReadOnly, .outcomeUnknown, .retryLimitReached] {
            #expect(HTTPProblem.unhandled(UnraceError(code, "failing over")).status == .serviceUnavailable, "\(code)")
        }
        let other = HTTPProblem.unhandled(UnraceError(.storeFailure, "broken"))
        #expect(other.status == .internalServerError && other.retryAfterSeconds == nil)
        #expect(HTTPProblem.unhandled(HTTPProblem(.notFound)).code == .notFound)
    }

    @Test("a problem encodes RFC 9457 members with a stable type per code")
    func problem() throws {
        let problem = HTTPProblem(.idempotencyKeyReused, detail: "used with a different request")
        #expect(problem.status.code == 422)
        let body = try JSONDecoder().decode(HTTPProblem.Body.self, from: problem.jsonBody())
        #expect(body.type == "urn:unrace:problem:idempotency_key_reused")
        #expect(body.code == "idempotency_key_reused")
        #expect(body.status == 422)
        #expect(body.detail == "used with a different request")
        #expect(HTTPProblem(.requestInProgress).status == .conflict)
        #expect(HTTPProblem(.preconditionRequired).status.code == 428)
        #expect(HTTPProblem(.bodyTooLarge).status.code == 413)
    }

    @Test("a stored response keeps status, headers and body, and drops per-transfer fields")
    func stored() throws {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.location] = "/orders/1"
        fields[.date] = "Sat, 28 Nov 2026 00:00:00 GMT"
        fields[.setCookie] = "session=secret"
        fields[.contentLength] = "2"
        fields[.idempotentReplayed] = "true"
        let stored = StoredResponse(HTTPResponse(status: .created, headerFields: fields), body: Data("{}".utf8))
        let decoded = try JSONDecoder().decode(StoredResponse.self, from: JSONEncoder().encode(stored))
        #expect(decoded == stored)
        #expect(decoded.head.status == .created)
        #expect(decoded.head.headerFields[.location] == "/orders/1")
        #expect(decoded.head.headerFields[.contentType] == "application/json")
        for dropped in [HTTPField.Name.date, .setCookie, .contentLength, .idempotentReplayed] {
            #expect(decoded.head.headerFields[dropped] == nil)
        }
        #expect(decoded.body == Data("{}".utf8))
    }
}
