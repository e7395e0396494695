import Logging
import ServiceLifecycle
import UnraceCore

/// The loop every maintenance `Service` runs: a round, then — unless the round did a full batch —
/// a wait of `interval` on the component's clock; a store error is logged and the round retried
/// after the interval; cancellation or a graceful shutdown ends it (a round in progress rolls back).
enum MaintenanceLoop {
    static func validate(interval: Duration, batchLimit: Int, _ what: String) throws {
        guard interval >= .milliseconds(1), interval <= .seconds(3_600), (1...10_000).contains(batchLimit) else {
            throw UnraceError(.invalidConfiguration, "\(what) needs an interval of 1 ms to 1 h and a batch limit of 1 to 10,000")
        }
    }

    /// Runs `round` until cancelled or the service group shuts down gracefully. `round` returns
    /// whether it did a full batch (run again at once). The settings are checked first: a
    /// service's are `var`s, which may have been set out of range after its `init` checked them.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` before any round, as ``validate(interval:batchLimit:_:)``.
    static func run(
        interval: Duration,
        batchLimit: Int,
        _ what: String,
        clock: any WallClock,
        logger: Logger,
        failure: Logger.Message,
        _ round: @escaping @Sendable () async throws -> Bool
    ) async throws {
        try validate(interval: interval, batchLimit: batchLimit, what)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    if try await round() { continue }
                } catch is CancellationError {
                    return
                } catch {
                    // The error's code and its fixed message, not its description: details may name keys.
                    logger.warning(failure, metadata: Telemetry.errorMetadata(error))
                }
                do { try await clock.sleep(for: interval) } catch { return }
            }
        }
    }
}
