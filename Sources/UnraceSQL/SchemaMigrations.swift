package import UnraceCore

/// Versioned, idempotent schema migrations, applied in order inside one transaction.
///
/// The runner records each applied version in `unrace_schema_migrations`; running it again
/// applies nothing. A database migrated by a newer Unrace (a version this one does not know)
/// is refused with `UnraceError.Code.schemaTooNew` rather than used with wrong assumptions.
package struct SchemaMigrations: Sendable {
    package struct Migration: Sendable {
        package var version: Int
        package var statements: [String]
        package init(version: Int, statements: [String]) {
            self.version = version
            self.statements = statements
        }
    }

    package var migrations: [Migration]
    /// A query (one `?`: the table) answering at most one row whose `present` column says whether
    /// the table exists where new tables are created, so that a database with nothing to apply is
    /// only read (one that a standby or `default_transaction_read_only` keeps read-only opens).
    /// A row whose `present` is false and whose `schema` column names a schema says the table is
    /// found elsewhere on the search path: the migration refuses to run.
    package var tableExistsQuery: String?
    package init(_ migrations: [Migration], tableExistsQuery: String? = nil) {
        self.migrations = migrations
        self.tableExistsQuery = tableExistsQuery
    }

    package static let table = "unrace_schema_migrations"

    /// Applies what is missing. Run inside a transaction the store holds exclusively.
    /// - Returns: the versions applied by this call.
    @discardableResult
    package func apply(_ tx: some SQLTransaction, now: Timestamp) async throws -> [Int] {
        let known = Set(migrations.map(\.version))
        if let tableExistsQuery, let found = try await tx.query(tableExistsQuery, [.text(Self.table)]).first {
            if found["present"].bool != true, let schema = found["schema"].string {
                // Another schema on the search path has the tables, the one new tables would go
                // to has none: using the first would merge this store with that one, creating
                // the second would leave every stored key behind. Neither is silent.
                throw UnraceError(
                    .invalidConfiguration,
                    "Unrace's tables are in another schema of the search path than the one it would create them in",
                    detail: "found in schema \(schema.terminalSafe); put only this store's schema on its search path"
                )
            }
            if found["present"].bool == true {
                let applied = try await Self.applied(tx, known: known)
                if applied == known { return [] }
            }
        }
        try await tx.execute(
            "CREATE TABLE IF NOT EXISTS \(Self.table) (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
        )
        let applied = try await Self.applied(tx, known: known)
        var done: [Int] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
            for statement in migration.statements { try await tx.execute(statement) }
            try await tx.execute(
                "INSERT INTO \(Self.table) (version, applied_at) VALUES (?, ?)",
                [.int(migration.version), .integer(now.milliseconds)]
            )
            done.append(migration.version)
        }
        return done
    }

    /// The versions the database has applied.
    /// - Throws: ``UnraceError/Code/schemaTooNew`` for a version newer than `known` (before
    ///   any DDL, so a read-only database written by a newer Unrace says so rather than refusing
    ///   the DDL as read-only).
    private static func applied(_ tx: some SQLTransaction, known: Set<Int>) async throws -> Set<Int> {
        let rows = try await tx.query("SELECT version FROM \(Self.table)")
        let applied = Set(rows.compactMap { $0["version"].int64 }.map(Int.init))
        if let unknown = applied.subtracting(known).max() {
            throw UnraceError(
                .schemaTooNew,
                "the database schema was written by a newer version of Unrace",
                detail: "schema version \(unknown); this build knows up to \(known.max() ?? 0)"
            )
        }
        return applied
    }
}
