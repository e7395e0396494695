public import Hummingbird
import UnraceHTTP

/// RFC 9110 conditional requests on a versioned resource, whose entity tag is its version
/// (``EntityTag/init(version:)``).
///
/// ```swift
/// let current = try await records.read(id, as: Product.self)
/// let expected = try Preconditions().check(request, currentVersion: current?.version)
/// let version = try await records.write(id, product, expectedVersion: expected ?? 0)
/// ```
/// The returned version is what the write must expect: a write that finds another version
/// (someone wrote between the check and the write) fails as a version conflict, which a handler
/// answers with 412 too. The check alone is not the guard; the compare-and-set is.
public struct Preconditions: Sendable {
    /// Whether a write to an existing resource without `If-Match` is refused with 428
    /// (default `true`: a client must show which version it changes). `If-None-Match: *` is
    /// the only stand-in: it asks to create, never to overwrite.
    public var requiresIfMatch: Bool

    /// - Parameter requiresIfMatch: refuse writes to existing resources without `If-Match` (428).
    public init(requiresIfMatch: Bool = true) { self.requiresIfMatch = requiresIfMatch }

    /// Evaluates `If-Match` and `If-None-Match` against the resource's current version
    /// (`nil` when it does not exist).
    /// - Returns: the current version, to pass as the write's expected version.
    /// - Throws: ``HTTPProblem``: 412 `precondition_failed` when a condition does not hold,
    ///   428 `precondition_required` when `If-Match` is required and absent, 400
    ///   `condition_invalid` when a header is malformed.
    @discardableResult
    public func check(_ request: Request, currentVersion: Int64?) throws -> Int64? {
        let current = currentVersion.map(EntityTag.init(version:))
        let ifNoneMatch = try request.headers[.ifNoneMatch].map(EntityTagCondition.init(parsing:))
        if let header = request.headers[.ifMatch] {
            guard try EntityTagCondition(parsing: header).ifMatchHolds(current: current) else {
                throw HTTPProblem(.preconditionFailed, detail: "the resource is not at the version If-Match names")
            }
        } else if requiresIfMatch, current != nil, ifNoneMatch != .any {
            // Only `If-None-Match: *` (create, never overwrite) stands in for If-Match.
            throw HTTPProblem(.preconditionRequired, detail: "send If-Match with the resource's ETag to change it")
        }
        if let ifNoneMatch, !ifNoneMatch.ifNoneMatchHolds(current: current) {
            throw HTTPProblem(.preconditionFailed, detail: "the resource already exists at a version If-None-Match names")
        }
        return currentVersion
    }
}
