import Testing
import Unrace

@testable import UnraceSimulation

/// What a simulated run leaves behind once it is over.
@Suite("Simulated world")
struct SimulationWorldTests {
    @Test("a run's world is freed when the run ends, for every scenario and handler: a long sweep's memory does not grow by each run")
    func worldFreedAfterRun() async {
        let kept = await onSimulationThread {
            SimulationExecutor.run { () async -> [String] in
                var kept: [String] = []
                for scenario in Scenario.all {
                    for handler in HandlerKind.allCases {
                        weak var released: World?
                        let backend = SimulationBackend.memory(MemoryStore())
                        do {
                            let world = World(choices: Choices(seed: 7), tracing: false, backend: backend, disabledGuards: [])
                            released = world
                            _ = await Simulator.play(scenario, handler, in: world, knobs: Knobs())
                        }
                        backend.close()
                        if released != nil { kept.append("\(scenario.name) \(handler.rawValue)") }
                    }
                }
                return kept
            }
        }
        #expect(kept == [])
    }
}
