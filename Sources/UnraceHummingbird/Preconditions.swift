public import Hummingbird
public import UnraceHTTP

/// RFC 9110 conditional requests on a versioned resource, whose entity tag is its version
/// (``EntityTag/init(version:)``): the Hummingbird face of ``UnraceHTTP/RequestConditions``.
///
/// ```swift
/// let current = try await records.read(id, as: Product.self)
/// switch try Preconditions().write(request, currentVersion: current?.version) {
/// case .create: guard try await records.create(id, product) == nil else { throw HTTPProblem(.preconditionFailed) }
/// case .replace(let expected): try await records.write(id, product, expectedVersion: expected)
/// case .replaceExisting: try await records.replace(id, product)
/// }
/// ```
/// The check reads; the conditional write is the guard: a writer who got there between the
/// check and a `.replace` write makes it fail as a version conflict (answer 412), while
/// `If-Match: *` (`.replaceExisting`) only needs the resource to exist.
public struct Preconditions: Sendable {
    /// Whether a write to an existing resource without `If-Match` is refused with 428
    /// (default `true`: a client must show which version it changes). `If-None-Match: *` is
    /// the only stand-in: it asks to create, never to overwrite.
    public var requiresIfMatch: Bool

    /// - Parameter requiresIfMatch: refuse writes to existing resources without `If-Match` (428).
    public init(requiresIfMatch: Bool = true) { self.requiresIfMatch = requiresIfMatch }

    /// Evaluates a write's `If-Match` and `If-None-Match` against the resource's current version
    /// (`nil` when it does not exist).
    /// - Returns: how the write must be made (``UnraceHTTP/WritePrecondition``).
    /// - Throws: ``HTTPProblem``: 412 `precondition_failed` when a condition does not hold,
    ///   428 `precondition_required` when `If-Match` is required and absent, 400
    ///   `condition_invalid` when a header is malformed.
    public func write(_ request: Request, currentVersion: Int64?) throws -> WritePrecondition {
        try RequestConditions(request.headers).forWrite(currentVersion: currentVersion, requiresIfMatch: requiresIfMatch)
    }

    /// Evaluates a read's `If-None-Match` (and `If-Match`) against the current version.
    /// - Returns: ``UnraceHTTP/ReadPrecondition/notModified`` when the client's copy is current:
    ///   answer 304 with the `ETag` and no body.
    /// - Throws: ``HTTPProblem`` 412 when `If-Match` does not hold, 400 `condition_invalid`.
    public func read(_ request: Request, currentVersion: Int64?) throws -> ReadPrecondition {
        try RequestConditions(request.headers).forRead(currentVersion: currentVersion)
    }

    /// Evaluates `If-Match` and `If-None-Match` and returns the current version.
    ///
    /// Prefer ``write(_:currentVersion:)``: a write that expects the returned version turns
    /// `If-Match: *` — whose precondition is only that the resource exists — into a
    /// compare-and-set on the version read, which a concurrent writer makes fail.
    /// - Throws: as ``write(_:currentVersion:)``.
    @available(*, deprecated, message: "use write(_:currentVersion:), which keeps If-Match: * from failing on a concurrent writer")
    @discardableResult
    public func check(_ request: Request, currentVersion: Int64?) throws -> Int64? {
        _ = try write(request, currentVersion: currentVersion)
        return currentVersion
    }
}
