import Crypto
import Foundation

extension OperationKey {
    /// A key for a downstream system (a payment provider's idempotency key, an email service's
    /// message id) that is the same for every attempt and every takeover of this operation.
    ///
    /// Deterministic: `scope`, this key and `label` fully decide it, so a new holder that resumes
    /// after a crash sends the downstream system the key the old holder used, and the downstream
    /// system deduplicates the call. The result is `"<label>-" + 40 hex digits` of SHA-256.
    ///
    /// The label is taken in NFC, as keys and scopes are: labels equal as Swift strings (`"café"`
    /// precomposed or decomposed) give one key. It goes into the result as given otherwise, so
    /// keep it to what the downstream system accepts in its keys.
    public func derived(_ label: String, scope: Scope) -> String {
        let label = label.precomposedStringWithCanonicalMapping
        var hasher = SHA256()
        hasher.update(data: Array(scope.rawValue.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(rawValue.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(label.utf8))
        let digest = hasher.finalize().prefix(20)
        let hexDigits: [Character] = Array("0123456789abcdef")
        var text = label + "-"
        for byte in digest {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0f)])
        }
        return text
    }
}
