/// A declared state machine for one kind of entity (an order, a payment): its states, the events
/// that move it, and the states it never leaves.
///
/// Applying an event the current state does not allow is a rejection with a reason, never a
/// silent change. A declaration is validated when it is built: unknown states, unreachable
/// states, ambiguous rules and rules out of terminal states are ``UnraceError/Code/invalidLifecycle``
/// errors that name the offending state or rule.
///
/// ```swift
/// let order = try Lifecycle(
///     initial: "new", terminal: ["shipped", "cancelled"],
///     transitions: [
///         .init(from: "new", on: "OrderCreated", to: "created"),
///         .init(from: "created", on: "PaymentCaptured", to: "paid"),
///         .init(from: "paid", on: "OrderShipped", to: "shipped"),
///         .init(from: "created", on: "OrderCancelled", to: "cancelled"),
///         .init(from: "paid", on: "OrderCancelled", to: "cancelled"),
///     ]
/// )
/// ```
public struct Lifecycle: Sendable, Hashable {
    /// One allowed move: in state `from`, event `on` moves the entity to `to`.
    public struct Transition: Sendable, Hashable {
        /// The state the rule applies in.
        public var from: String
        /// The event type.
        public var on: String
        /// The state the event moves to.
        public var to: String

        /// Creates a rule.
        public init(from: String, on: String, to: String) {
            self.from = from
            self.on = on
            self.to = to
        }
    }

    /// The state of an entity no event has touched yet.
    public let initial: String
    /// The states no event leaves.
    public let terminal: Set<String>
    /// Every state: the initial one and those the rules name.
    public let states: Set<String>
    /// The rules, by (state, event).
    public let rules: [String: [String: String]]

    /// Declares and validates a lifecycle. State and event names follow
    /// ``NameRule/lifecycleWord`` (1 to 64 printable bytes, kept in NFC), because states are stored.
    /// - Throws: ``UnraceError/Code/invalidLifecycle`` naming the offending state or rule.
    public init(initial: String, terminal: Set<String>, transitions: [Transition]) throws {
        let word = NameRule.lifecycleWord
        let initial = try word.validate(initial)
        let terminal = Set(try terminal.map(word.validate))
        var states: Set<String> = [initial]
        var rules: [String: [String: String]] = [:]
        for given in transitions {
            let rule = Transition(from: try word.validate(given.from), on: try word.validate(given.on), to: try word.validate(given.to))
            if terminal.contains(rule.from) {
                throw UnraceError(
                    .invalidLifecycle,
                    "terminal state '\(rule.from)' has an outgoing rule on '\(rule.on)'"
                )
            }
            if let existing = rules[rule.from]?[rule.on], existing != rule.to {
                throw UnraceError(
                    .invalidLifecycle,
                    "ambiguous rule: '\(rule.on)' in state '\(rule.from)' moves to both '\(existing)' and '\(rule.to)'"
                )
            }
            rules[rule.from, default: [:]][rule.on] = rule.to
            states.insert(rule.from)
            states.insert(rule.to)
        }
        for state in terminal.sorted() where !states.contains(state) {
            throw UnraceError(.invalidLifecycle, "terminal state '\(state)' is not the target of any rule")
        }
        // Every state must be reachable from the initial one.
        var reached: Set<String> = [initial]
        var frontier = [initial]
        while let state = frontier.popLast() {
            for target in (rules[state] ?? [:]).values where reached.insert(target).inserted {
                frontier.append(target)
            }
        }
        if let unreachable = states.subtracting(reached).sorted().first {
            throw UnraceError(.invalidLifecycle, "state '\(unreachable)' cannot be reached from '\(initial)'")
        }
        self.initial = initial
        self.terminal = terminal
        self.states = states
        self.rules = rules
    }

    /// What applying an event to a state does.
    public enum Decision: Sendable, Hashable {
        /// The rule moves the entity.
        case moved(from: String, to: String)
        /// The state does not allow the event; nothing changes.
        case rejected(reason: String)
        /// The entity is in a terminal state; the late event is absorbed and reported, and
        /// changes nothing (a late OrderCreated after OrderCancelled does not resurrect the order).
        case absorbed(reason: String)
    }

    /// Decides what `event` does in `state`. Pure.
    public func apply(_ event: String, to state: String) -> Decision {
        if let target = rules[state]?[event] { return .moved(from: state, to: target) }
        if terminal.contains(state) {
            return .absorbed(reason: "'\(event)' arrived after the terminal state '\(state)'")
        }
        return .rejected(reason: "'\(event)' is not allowed in state '\(state)'")
    }

    /// The terminal state an event leads to from some state, if any: where an entity that has not
    /// been seen yet is placed when such an event arrives first (cancel before create). The
    /// placeholder remembers the terminal event, so the late create is absorbed.
    public func terminalTarget(of event: String) -> String? {
        let targets = Set(rules.values.compactMap { $0[event] }).filter(terminal.contains)
        return targets.count == 1 ? targets.first : nil
    }

    /// What an event does to an entity in `state`, or to an unseen one (`state == nil`): unseen
    /// entities start in ``initial``; an unseen entity's first event that is not allowed there
    /// but leads to a terminal state from elsewhere leaves a placeholder in that terminal state.
    public func applyWithPlaceholder(_ event: String, to state: String?) -> Decision {
        guard let state else {
            let decision = apply(event, to: initial)
            if case .rejected = decision, let terminal = terminalTarget(of: event) {
                return .moved(from: initial, to: terminal)
            }
            return decision
        }
        return apply(event, to: state)
    }
}
