import ArgumentParser
import Foundation
import Hummingbird
import UnraceShop

/// `unrace provider`: the fake payment provider `unrace serve` charges, as a process of its own,
/// so it outlives a shop that crashes.
struct ProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provider",
        abstract:
            "Run the shop's external systems: a payment provider (POST /charges) and a mail API (POST /emails), idempotent on Idempotency-Key; GET /log lists every request."
    )

    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "The port to listen on (0 picks a free one).") var port = 9000

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
    }

    func run() async throws {
        let host = self.host
        let app = Application(
            router: PaymentProvider().router(),
            configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                FileHandle.standardOutput.write(Data("listening on http://\(host):\(channel.localAddress?.port ?? 0)\n".utf8))
            },
            logger: cliLogger("unrace.provider")
        )
        try await app.runService()
    }
}
