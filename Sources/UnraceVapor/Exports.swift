@_exported public import Unrace
@_exported public import UnraceFluent
// The framework-free HTTP rules and the Fluent store are part of this API: `import UnraceVapor`
// is all a Vapor application needs beside Vapor and Fluent.
@_exported public import UnraceHTTP
