public import Logging
public import ServiceLifecycle
import UnraceCore

/// A swift-service-lifecycle `Service` that voids expired pending transfers, so stored balances
/// and totals show them released (balance checks already ignore them).
///
/// Each round voids up to ``batchLimit`` in one short step (``Ledger/voidExpiredPendingTransfers(limit:)``);
/// a full batch runs the next round at once, a partial one waits ``interval`` on the ledger's
/// clock. A store error is logged and the round retried after the interval. The service stops when
/// its task is cancelled or the service group shuts down gracefully; a round in progress then
/// rolls back (nothing of it is written) and the next sweeper takes it up.
public struct PendingTransferSweeper<S: Store>: Service {
    /// The ledger swept.
    public let ledger: Ledger<S>
    /// How long to wait after a round that found fewer than ``batchLimit``. Default 1 s.
    public var interval: Duration
    /// The most transfers one round voids (1 to 10,000). Default 1,000.
    public var batchLimit: Int
    let logger: Logger

    /// A sweeper of `ledger`.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for an interval outside 1 ms…1 h or a
    ///   batch limit outside 1…10,000.
    public init(ledger: Ledger<S>, interval: Duration = .seconds(1), batchLimit: Int = 1_000, logger: Logger = Logger(label: "unrace.ledger.sweeper")) throws {
        guard interval >= .milliseconds(1), interval <= .seconds(3_600), (1...10_000).contains(batchLimit) else {
            throw UnraceError(.invalidConfiguration, "a sweeper needs an interval of 1 ms to 1 h and a batch limit of 1 to 10,000")
        }
        self.ledger = ledger
        self.interval = interval
        self.batchLimit = batchLimit
        self.logger = logger
    }

    /// Sweeps until cancelled or shut down gracefully.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let voided = try await ledger.voidExpiredPendingTransfers(limit: batchLimit)
                    if voided > 0 { logger.debug("voided expired pending transfers", metadata: ["count": "\(voided)"]) }
                    if voided == batchLimit { continue }
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("voiding expired pending transfers failed; retrying after the interval", metadata: ["error": "\(error)"])
                }
                do { try await ledger.configuration.clock.sleep(for: interval) } catch { return }
            }
        }
    }
}
