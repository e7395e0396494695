import FluentKit
import Logging
import NIOCore
import NIOPosix
import Testing
import Unrace

@testable import UnraceFluent

/// A driver Unrace does not know, refused before anything is sent to it.
extension FluentStoreDriverTests {
    @Test("a driver other than PostgreSQL or SQLite is refused with unsupported_database, before anything is sent to it")
    func unknownDriverIsRefused() async throws {
        let database = UnknownDriverDatabase(eventLoop: MultiThreadedEventLoopGroup.singleton.any())
        let error = await #expect(throws: UnraceError.self) {
            _ = try await FluentStore(database: database)
        }
        #expect(error?.code == .unsupportedDatabase)
        #expect(error?.code.rawValue == "unsupported_database")
        #expect(database.requests.value == 0, "no migration, no transaction on a database Unrace does not know")
    }
}

/// A Fluent database of a driver Unrace does not know (as MySQL's would be): it answers nothing
/// and counts what it was asked. The refusal is a decision about the driver alone, so a stand-in
/// is enough.
private struct UnknownDriverDatabase: Database {
    struct Configuration: DatabaseConfiguration {
        var middleware: [any AnyModelMiddleware] = []
        func makeDriver(for databases: Databases) -> any DatabaseDriver { fatalError("not used") }
    }

    let requests = Counter()
    let context: DatabaseContext
    init(eventLoop: any EventLoop) {
        context = DatabaseContext(configuration: Configuration(), logger: Logger(label: "test.unknown-driver"), eventLoop: eventLoop)
    }

    var inTransaction: Bool { false }
    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void) -> EventLoopFuture<Void> { asked() }
    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> { asked() }
    func execute(enum: DatabaseEnum) -> EventLoopFuture<Void> { asked() }
    func transaction<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        requests.increment()
        return closure(self)
    }
    func withConnection<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        requests.increment()
        return closure(self)
    }
    private func asked() -> EventLoopFuture<Void> {
        requests.increment()
        return eventLoop.makeSucceededVoidFuture()
    }
}
