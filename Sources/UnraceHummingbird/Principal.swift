public import HTTPTypes
public import Hummingbird
import Unrace
import UnraceHTTP

/// Whose key an `Idempotency-Key` is: keys are scoped per principal, so one client's key never
/// replays another client's response.
///
/// The principal's exact bytes become an Unrace ``Scope``: `p:` and the first 40 hex digits
/// (160 bits) of their SHA-256, so any text (an email, a token's subject) maps to a valid scope, and
/// the principal itself never reaches the store or its logs. Principals share a scope only when
/// their bytes are equal (equal-looking spellings are two principals). A principal must be
/// exactly what the client sent: text that holds U+FFFD (a byte that was not UTF-8, replaced by a
/// lossy decoding) is refused with 400 `principal_invalid`, so distinct ids never merge into one
/// scope.
public struct Principal<Context: RequestContext>: Sendable {
    let resolve: @Sendable (Request, Context) -> String?

    /// The longest principal accepted, in bytes.
    public static var byteCountMaximum: Int { PrincipalScope.byteCountMaximum }

    /// The value of a request header (for example an API-key id set by a gateway). A request
    /// without it, or with it more than once, is refused with 400 `principal_invalid`: of two
    /// values, one may be the client's own, sent ahead of the one a gateway appended.
    public static func header(_ name: HTTPField.Name) -> Principal {
        Principal { request, _ in PrincipalScope.headerValue(request.headers[values: name]) }
    }

    /// One principal for every request: a single-tenant service.
    public static var everyone: Principal { Principal { _, _ in "everyone" } }

    /// Your own rule, typically the authenticated identity your auth middleware put in the
    /// context. Return `nil` to refuse the request with 400 `principal_invalid`.
    public static func custom(_ resolve: @escaping @Sendable (Request, Context) -> String?) -> Principal {
        Principal(resolve: resolve)
    }

    /// The scope for a principal's text (``UnraceHTTP/PrincipalScope/scope(for:)``), or `nil`
    /// when the text is refused.
    static func scope(for principal: String) -> Scope? { PrincipalScope.scope(for: principal) }
}
