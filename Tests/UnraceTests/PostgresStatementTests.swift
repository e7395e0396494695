import Foundation
import Logging
import ServiceLifecycle
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// How `PostgresTransaction` numbers `?` placeholders: only outside comments, quoted text and
/// jsonb operators.
@Suite("PostgreSQL statements")
struct PostgresStatementTests {
    @Test("placeholders are rewritten only outside comments, quoted and dollar-quoted text and jsonb operators")
    func placeholderRewriting() async throws {
        let cases: [(String, String)] = [
            ("SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"),
            ("SELECT '?', ?", "SELECT '?', $1"),
            ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
            ("SELECT E'\\'?', ?", "SELECT E'\\'?', $1"),
            ("SELECT $$ ? $$, ?", "SELECT $$ ? $$, $1"),
            ("SELECT $tag$ ? $tag$, ?", "SELECT $tag$ ? $tag$, $1"),
            ("SELECT /* ? /* ? */ ? */ ?", "SELECT /* ? /* ? */ ? */ $1"),
            ("SELECT \"a?\" FROM t WHERE x = ?", "SELECT \"a?\" FROM t WHERE x = $1"),
            (
                "SELECT doc ?| ARRAY['a'], doc ?& ARRAY['b'] FROM t WHERE id = ?",
                "SELECT doc ?| ARRAY['a'], doc ?& ARRAY['b'] FROM t WHERE id = $1"
            ),
            ("SELECT $1, doc ? 'k' FROM t", "SELECT $1, doc ? 'k' FROM t"),
            ("SELECT ?||'x'", "SELECT $1||'x'"),
        ]
        for (sql, expected) in cases {
            #expect(PostgresTransaction.numberPlaceholders(sql) == expected, "\(sql)")
        }
    }

    @Test("on a live PostgreSQL, `?` in comments and dollar quotes stays text", .enabled(if: TestPostgres.required, "needs PostgreSQL"))
    func placeholderRewritingLive() async throws {
        try await withStore(.postgres) { store, _ in
            let row = try await store.withTransaction { tx in
                try await tx.query("SELECT ? AS a /* not ? a placeholder */, '?' AS b, $q$?$q$ AS c, ? AS d", [1, 2])[0]
            }
            #expect(row["a"] == .integer(1) && row["b"] == .text("?") && row["c"] == .text("?") && row["d"] == .integer(2))
        }
    }
}
