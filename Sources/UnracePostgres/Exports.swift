// The SQL seam (`SQLTransaction`, `SQLValue`, `SQLRow`) is part of this API: a step's body writes
// through it, so `import UnracePostgres` is all a caller needs for it.
@_exported public import UnraceSQL
