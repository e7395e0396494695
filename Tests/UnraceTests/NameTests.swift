import Foundation
import Logging
import ServiceLifecycle
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// Names (keys, ids, streams) follow one rule on every store: no NUL or control characters, one
/// Unicode form, refused with a typed error before anything is written.
@Suite("Names on every store")
struct NameTests {
    @Test("a NUL in a name is refused with a typed error and nothing is written", arguments: sqlBackends)
    func nulNames(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.nulNames(store) }
    }

    static func nulNames<S: SQLStore>(_ store: S) async throws {
        let prefix = uniqueName("nul")
        let reservations = Reservations(store: store)
        try await reservations.createResource("\(prefix)-seat", capacity: 1)
        for buyer in ["alice", "bob"] {
            let error = await #expect(throws: UnraceError.self) {
                try await reservations.hold("\(prefix)-seat", key: "hold\u{0}\(buyer)", timeToLive: .seconds(60))
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("control character U+0000") == true)
        }
        #expect(try await reservations.resource("\(prefix)-seat")?.available == 1, "neither hold was taken")

        let records = try Records(store: store, collection: "\(prefix)-docs")
        let createError = await #expect(throws: UnraceError.self) { try await records.create("id\u{0}two", "two") }
        #expect(createError?.code == .invalidArgument)
        #expect(try await records.create("id", "one") == nil, "'id' was never created by the refused call")
        #expect(try await records.read("id", as: String.self)?.value == "one")

        let counters = Counters(store: store)
        let counterError = await #expect(throws: UnraceError.self) { try await counters.create("\(prefix)\u{0}c", value: 1) }
        #expect(counterError?.code == .invalidArgument)

        let ledger = try Ledger(store: store)
        let accountError = await #expect(throws: UnraceError.self) {
            try await ledger.createAccounts([Account(id: "\(prefix)\u{0}wallet", ledger: 1, code: 1)])
        }
        #expect(accountError?.code == .invalidArgument)
        // The same rule at creation and at use: an id with a newline can be neither.
        let newlineError = await #expect(throws: UnraceError.self) {
            try await ledger.createAccounts([Account(id: "\(prefix)\nwallet", ledger: 1, code: 1)])
        }
        #expect(newlineError?.code == .invalidArgument)
        #expect(try await ledger.lookupAccounts(["\(prefix)"]).isEmpty)

        let eventError = #expect(throws: UnraceError.self) {
            try InboxEvent(id: "e\u{0}1", stream: "\(prefix)-s", sequence: 1, type: "T")
        }
        #expect(eventError?.code == .invalidEvent)
    }

    @Test("a lifecycle guard refuses an event name its lifecycle could never declare, and writes nothing", arguments: storeBackends)
    func lifecycleEventNames(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.lifecycleEventNames(store) }
    }

    static func lifecycleEventNames<S: Store>(_ store: S) async throws {
        do {
            let lifecycle = try Lifecycle(
                initial: "new",
                terminal: ["cancelled"],
                transitions: [.init(from: "new", on: "Cancel", to: "cancelled")]
            )
            let guardian = try LifecycleGuard(store: store, lifecycle: lifecycle, name: uniqueName("order"))
            for event in ["", "Can\u{0}cel", "Cancel\n", String(repeating: "e", count: 65)] {
                let ran = Counter()
                let error = await #expect(throws: UnraceError.self) {
                    try await guardian.apply(event, to: "o1") { _, _ in ran.increment() }
                }
                #expect(error?.code == .invalidLifecycle)
                #expect(ran.value == 0, "the handler never runs for a refused event")
            }
            // Nothing was stored for o1: a terminal event still finds it unseen and places it.
            #expect(try await guardian.apply("Cancel", to: "o1") == .moved(from: "new", to: "cancelled"))
            // An event name equal as a Swift string (NFD) to a declared one is that event.
            let accented = try Lifecycle(
                initial: "new",
                terminal: ["done"],
                transitions: [.init(from: "new", on: "R\u{E9}gl\u{E9}", to: "done")]
            )
            let accentedGuard = try LifecycleGuard(store: store, lifecycle: accented, name: uniqueName("order"))
            #expect(try await accentedGuard.apply("Re\u{301}gle\u{301}", to: "o2") == .moved(from: "new", to: "done"))
        }
    }

    @Test("keys equal as Swift strings (NFC and NFD) are one operation on every store", arguments: storeBackends)
    func nfcAndNFD(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.nfcAndNFD(store) }
    }

    static func nfcAndNFD<S: Store>(_ store: S) async throws {
        let composed = "order:caf\u{E9}"
        let decomposed = "order:cafe\u{301}"
        #expect(composed == decomposed, "Swift compares canonical equivalence")
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("nfc"))
        let runs = Counter()
        let first = try await operations.perform(key: composed, scope: scope) { _ in runs.increment() }
        let second = try await operations.perform(key: decomposed, scope: scope) { _ in runs.increment() }
        #expect(!first.isReplay && second.isReplay)
        #expect(runs.value == 1)

        let counters = Counters(store: store)
        let name = uniqueName("stock")
        try await counters.create("\(name)-caf\u{E9}", value: 10)
        #expect(try await counters.adjust("\(name)-cafe\u{301}", by: -1) == .applied(value: 9), "one counter under both spellings")
    }

    @Test("a format character is refused and named as one", arguments: ["\u{200F}", "\u{200D}", "\u{FEFF}"])
    func formatCharacters(character: String) async throws {
        let error = #expect(throws: UnraceError.self) { try OperationKey("key\(character)x") }
        #expect(error?.code == .invalidKey)
        #expect(error?.message.contains("format character") == true)
        #expect(error?.message.contains("control character") == false)
    }
}
