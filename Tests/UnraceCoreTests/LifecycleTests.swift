import Testing
import UnraceCore

@Suite("Lifecycle")
struct LifecycleTests {
    typealias T = Lifecycle.Transition

    func error(_ initial: String = "new", terminal: Set<String>, _ rules: [T]) -> UnraceError? {
        #expect(throws: UnraceError.self) { try Lifecycle(initial: initial, terminal: terminal, transitions: rules) }
    }

    @Test func validationErrorsNameTheOffendingStateOrRule() {
        let unknownTerminal = error(terminal: ["archived"], [T(from: "new", on: "Create", to: "created")])
        #expect(unknownTerminal?.code == .invalidLifecycle)
        #expect(unknownTerminal?.message.contains("'archived'") == true)

        let unreachable = error(terminal: [], [T(from: "new", on: "Create", to: "created"), T(from: "limbo", on: "Go", to: "created")])
        #expect(unreachable?.code == .invalidLifecycle)
        #expect(unreachable?.message.contains("'limbo'") == true)

        let ambiguous = error(terminal: [], [T(from: "new", on: "Create", to: "a"), T(from: "new", on: "Create", to: "b")])
        #expect(ambiguous?.code == .invalidLifecycle)
        #expect(ambiguous?.message.contains("'Create'") == true && ambiguous?.message.contains("'new'") == true)

        let outOfTerminal = error(terminal: ["done"], [T(from: "new", on: "Finish", to: "done"), T(from: "done", on: "Reopen", to: "new")])
        #expect(outOfTerminal?.code == .invalidLifecycle)
        #expect(outOfTerminal?.message.contains("'done'") == true)

        let empty = error(terminal: [], [T(from: "new", on: "", to: "x")])
        #expect(empty?.code == .invalidLifecycle)
    }

    let order = try! Lifecycle(
        initial: "new",
        terminal: ["shipped", "cancelled"],
        transitions: [
            T(from: "new", on: "OrderCreated", to: "created"),
            T(from: "created", on: "PaymentCaptured", to: "paid"),
            T(from: "paid", on: "OrderShipped", to: "shipped"),
            T(from: "created", on: "OrderCancelled", to: "cancelled"),
            T(from: "paid", on: "OrderCancelled", to: "cancelled"),
        ]
    )

    @Test func impossibleMovesAreRejectedWithAReason() {
        #expect(order.apply("OrderShipped", to: "created") == .rejected(reason: "'OrderShipped' is not allowed in state 'created'"))
        #expect(order.apply("PaymentCaptured", to: "created") == .moved(from: "created", to: "paid"))
    }

    @Test func lateEventsAfterTerminalAreAbsorbed() {
        guard case .absorbed = order.apply("OrderCreated", to: "cancelled") else {
            Issue.record("a late create after cancel must be absorbed")
            return
        }
    }

    @Test func cancelBeforeCreateLeavesAPlaceholder() {
        #expect(order.applyWithPlaceholder("OrderCancelled", to: nil) == .moved(from: "new", to: "cancelled"))
        guard case .absorbed = order.applyWithPlaceholder("OrderCreated", to: "cancelled") else {
            Issue.record("the late create is absorbed by the placeholder")
            return
        }
        #expect(
            order.applyWithPlaceholder("PaymentCaptured", to: nil) == .rejected(reason: "'PaymentCaptured' is not allowed in state 'new'")
        )
    }

    @Test func sequencingDecisions() {
        #expect(SequencingDecision.decide(sequence: 1, head: 0, seen: false, parked: 0, parkingLimit: 5) == .apply)
        #expect(SequencingDecision.decide(sequence: 3, head: 0, seen: false, parked: 0, parkingLimit: 5) == .park(waitingFor: 1))
        #expect(SequencingDecision.decide(sequence: 3, head: 0, seen: false, parked: 5, parkingLimit: 5) == .refuse(parked: 5))
        #expect(SequencingDecision.decide(sequence: 2, head: 4, seen: false, parked: 0, parkingLimit: 5) == .stale(head: 4))
        #expect(SequencingDecision.decide(sequence: 2, head: 4, seen: true, parked: 0, parkingLimit: 5) == .duplicate)
    }

    @Test func invalidEvents() {
        for (id, stream, sequence) in [("", "s", Int64(1)), ("e", "", 1), ("e", "s", 0), (String(repeating: "x", count: 256), "s", 1)] {
            let error = #expect(throws: UnraceError.self) { try InboxEvent(id: id, stream: stream, sequence: sequence, type: "T") }
            #expect(error?.code == .invalidEvent)
        }
    }
}
