import Testing
import UnraceCore

/// The rules of versioned records, counters, quotas and holds alone: no store, the time given.
@Suite("Lost-update rules")
struct LostUpdateRuleTests {
    static let now = Timestamp(milliseconds: 50_000)

    // MARK: Records

    static func record(version: Int64) -> StoredRecord {
        StoredRecord(collection: "wallets", id: "w", value: [1], version: version, updatedAt: Timestamp(milliseconds: 1))
    }

    @Test("compare-and-swap writes only over the version read, and moves it on by one")
    func recordCompareAndSwap() {
        let (written, stored) = RecordRule.write(Self.record(version: 4), value: [2], expectedVersion: 4, now: Self.now)
        #expect(written == .written(version: 5))
        #expect(stored == StoredRecord(collection: "wallets", id: "w", value: [2], version: 5, updatedAt: Self.now))
        let (conflict, none) = RecordRule.write(Self.record(version: 5), value: [3], expectedVersion: 4, now: Self.now)
        #expect(conflict == .conflict(current: 5))
        #expect(none == nil)
        #expect(RecordRule.write(nil, value: [3], expectedVersion: 1, now: Self.now).0 == .notFound)
    }

    @Test("a write without an expected version overwrites whatever version exists, never a missing record")
    func recordBlindWrite() {
        #expect(RecordRule.write(Self.record(version: 9), value: [], expectedVersion: nil, now: Self.now).0 == .written(version: 10))
        #expect(RecordRule.write(nil, value: [], expectedVersion: nil, now: Self.now).0 == .notFound)
    }

    @Test("a version never wraps: at Int64.max every write conflicts")
    func recordVersionBound() {
        let (step, stored) = RecordRule.write(Self.record(version: .max), value: [], expectedVersion: .max, now: Self.now)
        #expect(step == .conflict(current: .max))
        #expect(stored == nil)
    }

    // MARK: Counters

    @Test("a counter moves within its floor and ceiling, both inclusive, and refuses to cross them")
    func counterBounds() {
        let counter = CounterState(name: "seats", value: 5, floor: 0, ceiling: 10)
        #expect(CounterRule.adjust(counter, by: 5).0 == .applied(value: 10))
        #expect(CounterRule.adjust(counter, by: -5).0 == .applied(value: 0))
        #expect(CounterRule.adjust(counter, by: 6) == (.refused(current: 5), nil))
        #expect(CounterRule.adjust(counter, by: -6) == (.refused(current: 5), nil))
        #expect(CounterRule.adjust(nil, by: 1).0 == .notFound)
        #expect(CounterRule.adjust(counter, by: 2).1 == CounterState(name: "seats", value: 7, floor: 0, ceiling: 10))
    }

    @Test("a counter refuses a move that would leave the 64-bit range, whatever its bounds")
    func counterOverflow() {
        let high = CounterState(name: "c", value: .max - 1, floor: .min, ceiling: .max)
        #expect(CounterRule.adjust(high, by: 1).0 == .applied(value: .max))
        #expect(CounterRule.adjust(high, by: 2).0 == .refused(current: .max - 1))
        let low = CounterState(name: "c", value: .min, floor: .min, ceiling: .max)
        #expect(CounterRule.adjust(low, by: -1).0 == .refused(current: .min))
    }

    // MARK: Quotas

    @Test("a window starts at the multiple of its length at or before now, negative times included, without overflow")
    func quotaWindowStart() {
        #expect(QuotaRule.windowStart(at: Timestamp(milliseconds: 12_345), window: 1_000) == Timestamp(milliseconds: 12_000))
        #expect(QuotaRule.windowStart(at: Timestamp(milliseconds: 12_000), window: 1_000) == Timestamp(milliseconds: 12_000))
        #expect(QuotaRule.windowStart(at: Timestamp(milliseconds: -1), window: 1_000) == Timestamp(milliseconds: -1_000))
        #expect(QuotaRule.windowStart(at: Timestamp(milliseconds: .min), window: 1_000) == Timestamp(milliseconds: .min))
    }

    @Test("the window rule is total: a window of 0 or less is now itself, the largest window does not overflow")
    func quotaWindowStartBounds() {
        let now = Timestamp(milliseconds: 1)
        #expect(QuotaRule.windowStart(at: now, window: 0) == now)
        #expect(QuotaRule.windowStart(at: now, window: -5) == now)
        #expect(QuotaRule.windowStart(at: now, window: .min) == now)
        #expect(QuotaRule.windowStart(at: now, window: .max) == Timestamp(milliseconds: 0))
        #expect(QuotaRule.windowStart(at: Timestamp(milliseconds: -1), window: .max) == Timestamp(milliseconds: -.max))
        #expect(QuotaRule.windowStart(at: Timestamp(milliseconds: .max), window: .max) == Timestamp(milliseconds: .max))
        #expect(QuotaRule.windowStart(at: Timestamp(milliseconds: .min), window: .max) == Timestamp(milliseconds: .min))
    }

    @Test("a quota grants up to its limit in a window, denies past it, and starts again in the next window")
    func quotaWindow() {
        let w1 = Timestamp(milliseconds: 1_000)
        let w2 = Timestamp(milliseconds: 2_000)
        let (first, stored) = QuotaRule.consume(nil, name: "api", units: 3, limit: 5, windowStart: w1)
        #expect(first == .granted(used: 3))
        #expect(QuotaRule.consume(stored, name: "api", units: 2, limit: 5, windowStart: w1).0 == .granted(used: 5))
        #expect(QuotaRule.consume(stored, name: "api", units: 3, limit: 5, windowStart: w1) == (.denied(used: 3), nil))
        #expect(
            QuotaRule.consume(stored, name: "api", units: 5, limit: 5, windowStart: w2).1
                == QuotaState(name: "api", windowStart: w2, used: 5)
        )
        #expect(QuotaRule.consume(nil, name: "api", units: 6, limit: 5, windowStart: w1).0 == .denied(used: 0))
    }

    @Test("a request from an older window (a lagging clock) counts against the stored window, never resets it")
    func quotaWindowsOnlyMoveForward() {
        let stored = QuotaState(name: "api", windowStart: Timestamp(milliseconds: 2_000), used: 5)
        #expect(
            QuotaRule.consume(stored, name: "api", units: 1, limit: 5, windowStart: Timestamp(milliseconds: 1_000)) == (
                .denied(used: 5), nil
            )
        )
    }

    @Test("a quota's use never overflows")
    func quotaOverflow() {
        let stored = QuotaState(name: "q", windowStart: Timestamp(milliseconds: 0), used: .max - 1)
        #expect(
            QuotaRule.consume(stored, name: "q", units: 2, limit: .max, windowStart: Timestamp(milliseconds: 0)).0
                == .denied(used: .max - 1)
        )
    }

    // MARK: Holds

    static let show = ResourceState(name: "show", capacity: 10, held: 2, confirmed: 3)

    @Test("a hold takes units only while enough are neither held nor confirmed")
    func holdPlacement() {
        #expect(Self.show.available == 5)
        let later = Self.now + .seconds(60)
        let (placed, resource) = HoldRule.place(key: "k", units: 5, on: Self.show, expiresAt: later)
        #expect(placed == .hold(Hold(key: "k", resource: "show", units: 5, state: .held, expiresAt: later)))
        #expect(resource?.held == 7)
        #expect(HoldRule.place(key: "k", units: 6, on: Self.show, expiresAt: later) == (.insufficient(available: 5), nil))
    }

    @Test("fewer than 1 unit is never granted or held: it would give units back", arguments: [Int64(0), -5, .min])
    func nonPositiveUnits(units: Int64) {
        let w = Timestamp(milliseconds: 0)
        let stored = QuotaState(name: "q", windowStart: w, used: 3)
        #expect(QuotaRule.consume(stored, name: "q", units: units, limit: 5, windowStart: w) == (.denied(used: 3), nil))
        #expect(QuotaRule.consume(nil, name: "q", units: units, limit: 5, windowStart: w) == (.denied(used: 0), nil))
        #expect(HoldRule.place(key: "k", units: units, on: Self.show, expiresAt: Self.now) == (.insufficient(available: 5), nil))
    }

    @Test("a repeat is the same resource and units under the key; anything else reuses the key")
    func holdRepeat() {
        let hold = Hold(key: "k", resource: "show", units: 2, state: .held, expiresAt: Self.now)
        #expect(HoldRule.isRepeat(hold, resource: "show", units: 2))
        #expect(!HoldRule.isRepeat(hold, resource: "show", units: 3))
        #expect(!HoldRule.isRepeat(hold, resource: "other", units: 2))
    }

    @Test("a live hold confirms or releases once; an expired one is released whatever was asked; a settled one is not live")
    func holdSettlement() {
        let live = Hold(key: "k", resource: "show", units: 2, state: .held, expiresAt: Self.now + .seconds(1))
        let (confirmed, hold, resource) = HoldRule.settle(live, confirm: true, on: Self.show, now: Self.now)
        #expect(confirmed == .hold(hold!))
        #expect(hold?.state == .confirmed)
        #expect(resource?.held == 0 && resource?.confirmed == 5)
        let (released, releasedHold, afterRelease) = HoldRule.settle(live, confirm: false, on: Self.show, now: Self.now)
        #expect(released == .hold(releasedHold!) && releasedHold?.state == .released)
        #expect(afterRelease?.held == 0 && afterRelease?.confirmed == 3)
        // The expiry is exclusive: at its instant the hold has run out.
        let (late, lateHold, lateResource) = HoldRule.settle(live, confirm: true, on: Self.show, now: live.expiresAt)
        #expect(late == .notLive(lateHold!) && lateHold?.state == .released)
        #expect(lateResource?.held == 0 && lateResource?.confirmed == 3)
        let settled = Hold(key: "k", resource: "show", units: 2, state: .confirmed, expiresAt: live.expiresAt)
        #expect(HoldRule.settle(settled, confirm: false, on: Self.show, now: Self.now) == (.notLive(settled), nil, nil))
    }

    @Test("only expired held holds of the resource give their units back")
    func holdExpiry() {
        let expired = Hold(key: "a", resource: "show", units: 1, state: .held, expiresAt: Self.now)
        let live = Hold(key: "b", resource: "show", units: 1, state: .held, expiresAt: Self.now + .milliseconds(1))
        let confirmed = Hold(key: "c", resource: "show", units: 1, state: .confirmed, expiresAt: Timestamp(milliseconds: 49_000))
        let elsewhere = Hold(key: "d", resource: "other", units: 1, state: .held, expiresAt: Timestamp(milliseconds: 49_000))
        let (resource, released) = HoldRule.release(expired: [expired, live, confirmed, elsewhere], of: Self.show, now: Self.now)
        #expect(released.map(\.key) == ["a"])
        #expect(released.first?.state == .released)
        #expect(resource.held == 1)
    }
}
