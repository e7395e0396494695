import Testing
import UnraceCore

@Suite("ClaimDecision")
struct ClaimDecisionTests {
    let scope: Scope = "s"
    let key = try! OperationKey("k")

    func request(now: Int64, fingerprint: Fingerprint = .text("a")) -> ClaimRequest {
        ClaimRequest(
            scope: scope,
            key: key,
            fingerprint: fingerprint,
            holder: "h2",
            now: Timestamp(milliseconds: now),
            leaseUntil: Timestamp(milliseconds: now + 100)
        )
    }

    func record(_ state: OperationState, token: Int64 = 1, leaseUntil: Int64 = 1_000) -> OperationRecord {
        OperationRecord(
            scope: scope,
            key: key,
            fingerprint: .text("a"),
            state: state,
            token: FencingToken(token),
            holder: "h1",
            leaseUntil: Timestamp(milliseconds: leaseUntil),
            recoveryPoint: [7],
            outcome: state.isTerminal ? [1] : nil,
            createdAt: Timestamp(milliseconds: 0)
        )
    }

    @Test func absentKeyIsInserted() {
        #expect(ClaimDecision.decide(existing: nil, request: request(now: 5)) == .insert)
        let acquired = ClaimDecision.insert.acquiredRecord(for: request(now: 5), existing: nil)
        #expect(acquired?.token == .first && acquired?.state == .running)
        #expect(acquired?.leaseUntil == Timestamp(milliseconds: 105))
    }

    @Test func runningLeaseIsInProgressUntilItEnds() {
        let running = record(.running, leaseUntil: 1_000)
        #expect(
            ClaimDecision.decide(existing: running, request: request(now: 999))
                == .inProgress(holder: "h1", leaseUntil: Timestamp(milliseconds: 1_000))
        )
        // The lease end is exclusive: at exactly leaseUntil the lease has ended.
        #expect(
            ClaimDecision.decide(existing: running, request: request(now: 1_000)) == .takeOver(token: FencingToken(2), recoveryPoint: [7])
        )
    }

    @Test func takeoverKeepsRecoveryPointAndRaisesToken() {
        let decision = ClaimDecision.decide(existing: record(.released, token: 4), request: request(now: 5))
        #expect(decision == .takeOver(token: FencingToken(5), recoveryPoint: [7]))
        let taken = decision.acquiredRecord(for: request(now: 5), existing: record(.released, token: 4))
        #expect(taken?.holder == "h2" && taken?.token == FencingToken(5) && taken?.recoveryPoint == [7])
    }

    @Test(arguments: [OperationState.succeeded, .failed])
    func terminalIsReplayed(state: OperationState) {
        let done = record(state)
        #expect(ClaimDecision.decide(existing: done, request: request(now: 5_000)) == .completed(done))
    }

    @Test func mismatchBeatsEverything() {
        for state in OperationState.allCases {
            #expect(
                ClaimDecision.decide(existing: record(state), request: request(now: 5, fingerprint: .text("b"))) == .fingerprintMismatch
            )
        }
        #expect(
            ClaimDecision.decide(existing: record(.succeeded), request: request(now: 5, fingerprint: .none))
                == .completed(record(.succeeded))
        )
    }

    @Test func fenceAdmitsOnlyTheCurrentRunningToken() {
        #expect(Fence.admits(record(.running, token: 3), token: FencingToken(3)))
        #expect(!Fence.admits(record(.running, token: 3), token: FencingToken(2)))
        #expect(!Fence.admits(record(.succeeded, token: 3), token: FencingToken(3)))
        #expect(!Fence.admits(nil, token: FencingToken(1)))
    }

    @Test func retryableCompletionKeepsToken() {
        let released = Completion.retryable.apply(to: record(.running, token: 3), now: Timestamp(milliseconds: 50), retention: .seconds(1))
        #expect(released.state == .released && released.token == FencingToken(3))
        #expect(released.expiresAt == Timestamp(milliseconds: 1_050), "a released record expires like a completed one")
        let done = Completion.success([9]).apply(to: record(.running), now: Timestamp(milliseconds: 50), retention: .seconds(1))
        #expect(done.expiresAt == Timestamp(milliseconds: 1_050) && done.outcome == [9])
    }
}

@Suite("Keys and fingerprints")
struct KeyTests {
    @Test func canonicalJSONIgnoresKeyOrder() throws {
        struct A: Encodable {
            var amount = 40
            var currency = "EUR"
        }
        let one = try Fingerprint.json(["b": 1, "a": 2])
        let two = try Fingerprint.json(["a": 2, "b": 1])
        #expect(one == two)
        #expect(one != (try Fingerprint.json(["a": 2, "b": 3])))
        #expect(one.bytes.count == 32)
        #expect(try Fingerprint.json(A()) == (try Fingerprint.json(["currency": SendableValue.text("EUR"), "amount": .int(40)])))
        // Strings are their exact bytes, as documented: equal-looking spellings are two requests.
        let composed = try Fingerprint.json(["name": "caf\u{E9}"])
        let decomposed = try Fingerprint.json(["name": "cafe\u{301}"])
        #expect("caf\u{E9}" == "cafe\u{301}", "Swift compares them equal")
        #expect(composed != decomposed)
    }

    enum SendableValue: Encodable {
        case text(String)
        case int(Int)
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .text(let value): try container.encode(value)
            case .int(let value): try container.encode(value)
            }
        }
    }

    @Test func derivedKeysAreStableAndDistinct() throws {
        let key = try OperationKey("capture:pay_1")
        #expect(key.derived("charge", scope: "payments") == key.derived("charge", scope: "payments"))
        #expect(key.derived("charge", scope: "payments") != key.derived("refund", scope: "payments"))
        #expect(key.derived("charge", scope: "payments") != key.derived("charge", scope: "tenant-2"))
        #expect(key.derived("charge", scope: "payments").hasPrefix("charge-"))
        // The digest of an ASCII label is what it always was: downstream systems keep their keys.
        #expect(key.derived("charge", scope: "payments") == "charge-" + Self.sha256Prefix("payments\0capture:pay_1\0charge"))
    }

    @Test("labels equal as Swift strings (NFC and NFD) derive one downstream key")
    func derivedKeyLabelsAreNormalised() throws {
        let key = try OperationKey("capture:pay_1")
        #expect("café" == "cafe\u{301}")
        #expect(key.derived("café", scope: "payments") == key.derived("cafe\u{301}", scope: "payments"))
        #expect(key.derived("cafe\u{301}", scope: "payments").hasPrefix("café-"))
    }

    /// The first 20 bytes of SHA-256 of `text`'s UTF-8, in lowercase hex.
    static func sha256Prefix(_ text: String) -> String { String(Fingerprint.text(text).hex.prefix(40)) }

    @Test func timestampArithmeticSaturates() {
        #expect(Timestamp(milliseconds: .max - 1) + .seconds(10) == Timestamp(milliseconds: .max))
        #expect(Duration.milliseconds(1_500).wholeMilliseconds == 1_500)
    }

    @Test(
        "a reading up to Timestamp.latestReading is decided on; a later one is refused, and a lease or retention added to it never saturates"
    )
    func latestReading() throws {
        #expect(try Timestamp.latestReading.checkedReading() == .latestReading)
        #expect(try Timestamp(milliseconds: .min).checkedReading() == Timestamp(milliseconds: .min))
        #expect(throws: UnraceError.self) { try Timestamp(milliseconds: Timestamp.latestReading.milliseconds + 1).checkedReading() }
        let error = #expect(throws: UnraceError.self) { try Timestamp(milliseconds: .max).checkedReading() }
        #expect(error?.code == .invalidConfiguration)
        #expect(Timestamp.latestReading + .seconds(86_400 * 3_651) < Timestamp(milliseconds: .max))
    }
}
