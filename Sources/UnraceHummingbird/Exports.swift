// The framework-free HTTP rules (configuration, problems, entity tags, the engine) are part of
// this API: `import UnraceHummingbird` is all a Hummingbird application needs.
@_exported public import UnraceHTTP
