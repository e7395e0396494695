import Testing
import Unrace

@testable import UnraceSimulation

/// The simulator's store as the rest of Unrace sees it.
@Suite("Simulated store")
struct SimulatedStoreTests {
    @Test("the simulator's store names its backend 'simulated' (the store label of its metrics), on memory and SQLite")
    func backendName() async throws {
        for kind in SimulationStoreKind.allCases {
            let backend = try await SimulationBackend.make(kind)
            defer { backend.close() }
            let world = World(choices: Choices(seed: 1), tracing: false, backend: backend, disabledGuards: [])
            #expect(world.store.backendName == "simulated")
            #expect(world.direct.backendName == "simulated")
        }
    }
}
