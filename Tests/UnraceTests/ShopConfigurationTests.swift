import Logging
import Testing
import Unrace
import UnraceSQL
import UnraceSQLite
import UnraceShop

/// A shop or worker configuration that could not work is refused when it is made, with
/// `invalid_configuration`, instead of failing every request (or trapping on one) later.
@Suite("Shop configuration")
struct ShopConfigurationTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("a health timeout outside 100 ms to 60 s is refused when the shop is made")
    func timeoutBounds() async throws {
        try await withStore(.sqlite) { store, _ in try Self.refusesTimeoutsOutOfBounds(store) }
    }

    static func refusesTimeoutsOutOfBounds<S: SQLStore>(_ store: S) throws {
        for timeout in [Duration.milliseconds(99), .seconds(61)] {
            var configuration = ShopConfiguration()
            configuration.healthTimeout = timeout
            #expect(throws: UnraceError.self) { _ = try Shop(store: store, configuration: configuration) }
        }
    }

    @Test("a unit price outside 1 to 1,000,000,000 cents is refused: at Int64's end an order's amount overflowed and trapped the process")
    func unitPriceBounds() async throws {
        try await withStore(.sqlite) { store, _ in try Self.unitPriceBounds(store) }
    }

    static func unitPriceBounds<S: SQLStore>(_ store: S) throws {
        for price: Int64 in [0, -1, ShopConfiguration.unitPriceCentsMaximum + 1, .max / 2] {
            var configuration = ShopConfiguration()
            configuration.unitPriceCents = price
            let error = #expect(throws: UnraceError.self) { _ = try Shop(store: store, configuration: configuration) }
            #expect(error?.code == .invalidConfiguration, "price \(price)")
        }
        var highest = ShopConfiguration()
        highest.unitPriceCents = ShopConfiguration.unitPriceCentsMaximum
        _ = try Shop(store: store, configuration: highest)
    }

    @Test("a provider URL the shop or a worker could not call is refused when it is made; a trailing slash is dropped")
    func providerURLs() async throws {
        try await withStore(.sqlite) { store, _ in try Self.providerURLs(store) }
    }

    static func providerURLs<S: SQLStore>(_ store: S) throws {
        for url in [
            "127.0.0.1:9000", "localhost:9000", "ftp://127.0.0.1:9000", "http://", "http://h:1?x=1", "http://h:1#f", "http://u:p@h:1", "",
            "http://127.0.0.1:0", "http://127.0.0.1:65536",
        ] {
            var configuration = ShopConfiguration()
            configuration.provider = url
            let shop = #expect(throws: UnraceError.self) { _ = try Shop(store: store, configuration: configuration) }
            #expect(shop?.code == .invalidConfiguration, "\(url)")
            let worker = #expect(throws: UnraceError.self) {
                _ = try ShopWorker(store: store, handler: .guarded, name: "w", externalSystems: url, logger: quiet)
            }
            #expect(worker?.code == .invalidConfiguration, "\(url)")
        }
        var configuration = ShopConfiguration()
        configuration.provider = "HTTP://127.0.0.1:9000/"
        #expect(try Shop(store: store, configuration: configuration).configuration.provider == "HTTP://127.0.0.1:9000")
        _ = try ShopWorker(store: store, handler: .guarded, name: "w", externalSystems: "https://payments.example:443", logger: quiet)
    }
}
