public import Hummingbird
public import HTTPTypes
import Unrace

/// Whose key an `Idempotency-Key` is: keys are scoped per principal, so one client's key never
/// replays another client's response.
///
/// The principal's text becomes an Unrace ``Scope``: `h:` and the text when it is at most 62
/// bytes of `A-Z a-z 0-9 . _ : -`, else `x:` and the first 40 hex digits of its SHA-256. Two
/// different principals never share a scope (the prefixes keep the two forms apart).
public struct Principal<Context: RequestContext>: Sendable {
    let resolve: @Sendable (Request, Context) -> String?

    /// The longest principal accepted, in bytes.
    public static var byteCountMaximum: Int { 1_024 }

    /// The value of a request header (for example an API-key id set by a gateway). A request
    /// without it is refused with 400 `principal_invalid`.
    public static func header(_ name: HTTPField.Name) -> Principal {
        Principal { request, _ in request.headers[name] }
    }

    /// One principal for every request: a single-tenant service.
    public static var everyone: Principal { Principal { _, _ in "everyone" } }

    /// Your own rule, typically the authenticated identity your auth middleware put in the
    /// context. Return `nil` to refuse the request with 400 `principal_invalid`.
    public static func custom(_ resolve: @escaping @Sendable (Request, Context) -> String?) -> Principal {
        Principal(resolve: resolve)
    }

    /// The scope for a principal's text, or `nil` when it is empty, too long or holds control characters.
    static func scope(for principal: String) -> Scope? {
        let bytes = principal.utf8
        guard !bytes.isEmpty, bytes.count <= byteCountMaximum,
              !principal.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { return nil }
        if bytes.count <= Scope.maximumByteCount - 2, let scope = try? Scope("h:" + principal) { return scope }
        return try? Scope("x:" + Fingerprint.text(principal).hex.prefix(40))
    }
}
