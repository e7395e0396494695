import Testing
import Unrace

@testable import UnracePostgres

/// Stores made on one `PostgresClient` share its pool: a step of one store waiting behind
/// another's steps sees the pool lending connections, and waits on (``PostgresStore/connectionWaitMaximum``
/// counts from the pool's last lending or return to any of them, not to its own store's steps only).
@Suite("PostgreSQL stores sharing a client")
struct PostgresSharedClientTests {
    @Test(
        "stores on one client share one record of the pool's last lending; a store on another client has its own",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func sharedLeaseRecord() async throws {
        try await withStore(.postgres) { _, location in
            try await PostgresStore.withStore(url: location) { first in
                let onClient = try await PostgresStore(client: first.client)
                #expect(onClient.leases === first.leases)
                let before = onClient.leases.last
                _ = try await Operations(store: first).perform(key: "k") { _ in 1 }
                #expect(onClient.leases.last > before, "the other store's step was lent a connection")
                try await PostgresStore.withStore(url: location) { other in #expect(other.leases !== first.leases) }
            }
        }
    }
}
