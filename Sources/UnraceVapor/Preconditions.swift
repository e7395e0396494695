public import UnraceHTTP
public import Vapor

/// RFC 9110 conditional requests on a versioned resource whose entity tag is its version: the
/// Vapor face of ``UnraceHTTP/RequestConditions`` (the Hummingbird adapter has the same).
///
/// ```swift
/// let current = try await Product.find(sku, on: req.unrace.db)  // the claim's transaction on an idempotent route
/// switch try Preconditions().write(req, currentVersion: current?.version) {
/// case .create: …                                 // insert; a concurrent creator makes it 412
/// case .replace(let expected): …                  // UPDATE … WHERE version = expected; 0 rows → 412
/// case .replaceExisting: …                        // If-Match: * — replace whatever version exists
/// }
/// ```
public struct Preconditions: Sendable {
    /// Whether a write to an existing resource without `If-Match` is refused with 428 (default `true`).
    public var requiresIfMatch: Bool

    /// - Parameter requiresIfMatch: refuse writes to existing resources without `If-Match` (428).
    public init(requiresIfMatch: Bool = true) { self.requiresIfMatch = requiresIfMatch }

    /// Evaluates a write's `If-Match` and `If-None-Match` against the current version (`nil`:
    /// the resource does not exist).
    /// - Throws: ``UnraceHTTP/HTTPProblem``: 412, 428, or 400 `condition_invalid`.
    public func write(_ request: Request, currentVersion: Int64?) throws -> WritePrecondition {
        try RequestConditions(ifMatch: joined(request, "If-Match"), ifNoneMatch: joined(request, "If-None-Match"))
            .forWrite(currentVersion: currentVersion, requiresIfMatch: requiresIfMatch)
    }

    /// Evaluates a read's `If-None-Match` (and `If-Match`): ``UnraceHTTP/ReadPrecondition/notModified``
    /// when the client's copy is current (answer 304 with the `ETag`).
    /// - Throws: ``UnraceHTTP/HTTPProblem`` 412, or 400 `condition_invalid`.
    public func read(_ request: Request, currentVersion: Int64?) throws -> ReadPrecondition {
        try RequestConditions(ifMatch: joined(request, "If-Match"), ifNoneMatch: joined(request, "If-None-Match"))
            .forRead(currentVersion: currentVersion)
    }

    /// A header's lines joined with `, ` (how several lines of a list header read as one).
    private func joined(_ request: Request, _ name: String) -> String? {
        let values = request.headers[name]
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }
}
