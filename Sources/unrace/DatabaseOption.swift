import ArgumentParser
import Foundation
import Logging
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// `--database`: a SQLite file path, a `postgres://` URL, or nothing (a temporary SQLite file).
/// `UNRACE_DATABASE_URL` is used when the option is absent.
struct DatabaseOption: ParsableArguments {
    @Option(
        name: .long,
        help: "A SQLite file path or a postgres:// URL (default: $UNRACE_DATABASE_URL, else a temporary SQLite file)."
    )
    var database: String?

    var location: String? {
        database ?? ProcessInfo.processInfo.environment["UNRACE_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// Work to do on whichever SQL store the user chose; generic so it runs unchanged on both.
protocol StoreJob {
    associatedtype Output: Sendable
    func run<S: SQLStore>(_ store: S) async throws -> Output
}

/// Opens the store `location` names, runs `job`, and closes it again.
func withDatabase<J: StoreJob>(_ location: String?, logger: Logger, _ job: J) async throws -> J.Output {
    if let location, location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
        return try await PostgresStore.withStore(url: location, logger: logger) { store in try await job.run(store) }
    }
    if let location {
        return try await job.run(try await SQLiteStore(path: location, logger: logger))
    }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("unrace-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    return try await job.run(try await SQLiteStore(path: folder.appendingPathComponent("unrace.sqlite").path, logger: logger))
}

/// A quiet logger for the CLI, to standard error: errors only by default; the long-running
/// `serve` and `work` pass `.warning`, so a maintenance round or a delivery that failed is seen.
func cliLogger(_ label: String, level: Logger.Level = .error) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = level
    return logger
}

/// At most `limit + 1` bytes of the file at `path` (with `standardInput`, `-` is standard input):
/// enough to tell a file over `limit` from one at it, without reading an endless or huge one
/// whole (`/dev/zero`).
/// - Returns: `nil` when it cannot be opened or read (a directory, an I/O error): never a part
///   of it taken for the whole.
func readBounded(_ path: String, limit: Int, standardInput: Bool = false) -> Data? {
    let fromStandardInput = standardInput && path == "-"
    guard let handle = fromStandardInput ? FileHandle.standardInput : FileHandle(forReadingAtPath: path) else { return nil }
    defer { if !fromStandardInput { try? handle.close() } }
    var data = Data()
    do {
        while data.count <= limit {
            guard let chunk = try handle.read(upToCount: min(1 << 20, limit + 1 - data.count)), !chunk.isEmpty else { break }
            data.append(chunk)
        }
    } catch {
        return nil
    }
    return data
}

/// Writes an `--html` page (or any output file) to `path`; on failure says why on standard error
/// and returns false. Commands write it after their report and exit 2 for it only when nothing
/// outranks it: an anomaly's exit status 1 is never hidden by a file that could not be written.
func writeOutputFile(_ text: String, to path: String) -> Bool {
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return true
    } catch {
        FileHandle.standardError.write(Data("error: cannot write \(path): \(error.localizedDescription)\n".utf8))
        return false
    }
}
