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
    /// A query (one `?`: the table) answering one row whose `present` column says whether a table
    /// exists, so that a database with nothing to apply is only read (one that a standby or
    /// `default_transaction_read_only` keeps read-only opens).
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
        if let tableExistsQuery, try await tx.query(tableExistsQuery, [.text(Self.table)]).first?["present"].bool == true {
            let applied = Set(try await tx.query("SELECT version FROM \(Self.table)").compactMap { $0["version"].int64 }.map(Int.init))
            if applied == Set(migrations.map(\.version)) { return [] }
        }
        try await tx.execute(
            "CREATE TABLE IF NOT EXISTS \(Self.table) (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
        )
        let rows = try await tx.query("SELECT version FROM \(Self.table)")
        let applied = Set(rows.compactMap { $0["version"].int64 }.map(Int.init))
        let known = Set(migrations.map(\.version))
        if let unknown = applied.subtracting(known).max() {
            throw UnraceError(
                .schemaTooNew,
                "the database schema was written by a newer version of Unrace",
                detail: "schema version \(unknown); this build knows up to \(known.max() ?? 0)"
            )
        }
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
}
