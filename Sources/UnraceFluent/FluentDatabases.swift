import FluentKit
import Logging
import NIOCore
import Synchronization
import Unrace
import UnraceCore

/// Where a step's Fluent database comes from: one database handle, or an application's
/// databases on every event loop of its group.
enum DatabaseSource: Sendable {
    case single(any Database)
    case databases(Loops)

    /// A database for a step: for one handle, always it; for an application's databases, where
    /// writers run at once (PostgreSQL) every loop's in turn, else (SQLite) the first loop's for
    /// writes — the one writer — and the other loops' in turn for reads.
    /// - Throws: ``UnraceCore/UnraceError/Code/storeUnavailable`` once the application's
    ///   databases were shut down (a request still in flight as the application stops).
    func database(writing: Bool, concurrentWriters: Bool) throws -> any Database {
        switch self {
        case .single(let database): database
        case .databases(let loops): try loops.database(writing: writing, concurrentWriters: concurrentWriters)
        }
    }
}

/// An application's databases and the event loops a store's steps take connections on.
final class Loops: Sendable {
    let databases: Databases
    let id: DatabaseID
    let logger: Logger
    let loops: [any EventLoop]
    private let next = Mutex(0)

    /// The registered database `id` names, or the default one for `nil`; `nil` when there is
    /// none. FluentKit keeps its default id private (and traps when asked for a missing one), so
    /// it is read by reflection, once, as a store is made; should FluentKit rename it, a single
    /// registered database is still found.
    static func resolve(_ id: DatabaseID?, in databases: Databases) -> DatabaseID? {
        let registered = databases.ids()
        if let id { return registered.contains(id) ? id : nil }
        guard let field = Mirror(reflecting: databases).children.first(where: { $0.label == "defaultID" }) else {
            return registered.count == 1 ? registered.first : nil
        }
        guard let defaultID = field.value as? DatabaseID, registered.contains(defaultID) else { return nil }
        return defaultID
    }

    init(databases: Databases, id: DatabaseID, logger: Logger, loops: [any EventLoop]) {
        self.databases = databases
        self.id = id
        self.logger = logger
        self.loops = loops
    }

    func database(writing: Bool, concurrentWriters: Bool) throws -> any Database {
        let loop: any EventLoop
        if concurrentWriters {
            loop = next.withLock { next in
                next = (next + 1) % loops.count
                return loops[next]
            }
        } else if writing || loops.count == 1 {
            loop = loops[0]
        } else {
            loop = next.withLock { next in
                next = next % (loops.count - 1) + 1
                return loops[next]
            }
        }
        // The databases were checked to have this one when the store was made: only a shutdown
        // takes it away.
        guard let database = databases.database(id, logger: logger, on: loop) else {
            throw UnraceError(.storeUnavailable, "the application's Fluent databases were shut down; nothing was sent")
        }
        return database
    }
}
