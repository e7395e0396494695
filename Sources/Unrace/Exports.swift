// The core's value types (keys, scopes, fingerprints, tokens, errors) are part of this API:
// `import Unrace` is all a caller needs.
@_exported public import UnraceCore
