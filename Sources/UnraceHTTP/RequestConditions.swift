public import HTTPTypes

/// RFC 9110 conditional requests on a versioned resource whose entity tag is its version
/// (``EntityTag/init(version:)``), decided without a framework: the Hummingbird and Vapor
/// adapters ask this type and answer what it says.
///
/// A check reads the resource first; the write it allows is then made so that a writer who got
/// there in between cannot be overwritten (``WritePrecondition``): the check alone is not the
/// guard, the conditional write is.
public struct RequestConditions: Sendable, Hashable {
    /// `If-Match`, parsed; `nil` when absent.
    public var ifMatch: EntityTagCondition?
    /// `If-None-Match`, parsed; `nil` when absent.
    public var ifNoneMatch: EntityTagCondition?

    /// Conditions from header values (several lines of one header joined with `, `).
    /// - Throws: ``HTTPProblem`` 400 `condition_invalid` for a malformed header.
    public init(ifMatch: String?, ifNoneMatch: String?) throws {
        self.ifMatch = try ifMatch.map(EntityTagCondition.init(parsing:))
        self.ifNoneMatch = try ifNoneMatch.map(EntityTagCondition.init(parsing:))
    }

    /// Conditions from a request's header fields.
    /// - Throws: ``HTTPProblem`` 400 `condition_invalid` for a malformed header.
    public init(_ fields: HTTPFields) throws {
        try self.init(ifMatch: fields[.ifMatch], ifNoneMatch: fields[.ifNoneMatch])
    }

    /// Evaluates the conditions of a write (`PUT`, `PATCH`, `DELETE`) against the resource's
    /// current version (`nil`: it does not exist).
    /// - Parameter requiresIfMatch: refuse a write to an existing resource without `If-Match`
    ///   (428); only `If-None-Match: *` (create, never overwrite) stands in for it.
    /// - Returns: how the write must be made.
    /// - Throws: ``HTTPProblem`` 412 `precondition_failed` when a condition does not hold, 428
    ///   `precondition_required` when `If-Match` is required and absent.
    public func forWrite(currentVersion: Int64?, requiresIfMatch: Bool = true) throws -> WritePrecondition {
        let current = currentVersion.map(EntityTag.init(version:))
        if let ifMatch {
            guard ifMatch.ifMatchHolds(current: current) else {
                throw HTTPProblem(.preconditionFailed, detail: "the resource is not at the version If-Match names")
            }
        } else if requiresIfMatch, current != nil, ifNoneMatch != .any {
            throw HTTPProblem(.preconditionRequired, detail: "send If-Match with the resource's ETag to change it")
        }
        if let ifNoneMatch, !ifNoneMatch.ifNoneMatchHolds(current: current) {
            throw HTTPProblem(.preconditionFailed, detail: "the resource already exists at a version If-None-Match names")
        }
        guard let currentVersion else { return .create }
        switch ifMatch {
        case .tags: return .replace(expectedVersion: currentVersion)
        case .any, nil: return .replaceExisting
        }
    }

    /// Evaluates the conditions of a read (`GET`, `HEAD`) against the current version.
    ///
    /// On a resource that does not exist (`nil`) no condition applies: ``ReadPrecondition/send``,
    /// and the route answers its 404 — RFC 9110 §13.2.1 has a server ignore the preconditions when
    /// the answer without them would not be 2xx.
    /// - Returns: ``ReadPrecondition/notModified`` when `If-None-Match` names the current
    ///   version (weak comparison) or is `*` on an existing resource: answer 304 with the `ETag`.
    /// - Throws: ``HTTPProblem`` 412 `precondition_failed` when `If-Match` does not hold on an
    ///   existing resource.
    public func forRead(currentVersion: Int64?) throws -> ReadPrecondition {
        guard let currentVersion else { return .send }
        let current: EntityTag? = EntityTag(version: currentVersion)
        if let ifMatch, !ifMatch.ifMatchHolds(current: current) {
            throw HTTPProblem(.preconditionFailed, detail: "the resource is not at the version If-Match names")
        }
        if let ifNoneMatch, !ifNoneMatch.ifNoneMatchHolds(current: current) { return .notModified }
        return .send
    }
}

/// How a conditional write must be made, once its preconditions held on the version read.
public enum WritePrecondition: Sendable, Hashable {
    /// The resource did not exist: create it, failing (412) if a concurrent writer created it
    /// first.
    case create
    /// `If-Match` named the version read: write only if it is still that version
    /// (compare-and-set); a concurrent writer makes it fail (412).
    case replace(expectedVersion: Int64)
    /// The resource exists and no version was named (`If-Match: *`, or no condition where none is
    /// required): replace it at whatever version it has when the write lands — a concurrent
    /// writer does not make it fail; the resource must still exist.
    case replaceExisting
}

/// What a conditional read answers.
public enum ReadPrecondition: Sendable, Hashable {
    /// Send the representation.
    case send
    /// 304 Not Modified: the client's copy is current.
    case notModified
}
