import Testing
import Unrace
import UnraceSQL

/// What a query's columns read as on PostgreSQL: text types as their text, built-in types whose
/// binary form is not their text refused (with the column named), never garbage.
@Suite("PostgreSQL values", .timeLimit(.minutes(10)))
struct PostgresValuesTests {
    @Test(
        "timestamps, dates, oids, arrays and intervals are refused with invalid_argument naming the column; text, uuid, jsonb and enums read as text, a numeric NaN as NaN",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func columnTypes() async throws {
        try await withStore(.postgres) { store, _ in try await Self.columnTypes(store) }
    }

    static func columnTypes<S: SQLStore>(_ store: S) async throws {
        let mood = uniqueName("mood")
        try await store.withTransaction { tx in try await tx.execute("CREATE TYPE \(mood) AS ENUM ('happy', 'sad')") }
        let row = try await store.withTransaction { tx in
            try await tx.query(
                """
                SELECT 'x'::text AS t, 'y'::varchar AS v, '00000000-0000-0000-0000-000000000001'::uuid AS u,
                  '{"a": 1}'::jsonb AS j, 'happy'::\(mood) AS e, now()::text AS nt, 42::oid::bigint AS o, 'NaN'::numeric AS nan, pg_advisory_xact_lock(7220099) AS nothing, '-Infinity'::numeric AS ninf, 12.5::numeric AS half
                """
            )
        }[0]
        #expect(row["t"] == .text("x") && row["v"] == .text("y") && row["e"] == .text("happy"))
        #expect(row["u"] == .text("00000000-0000-0000-0000-000000000001"))
        #expect(row["j"] == .text(#"{"a": 1}"#))
        #expect(row["o"] == .integer(42) && row["nan"] == .text("NaN") && row["ninf"] == .text("-Infinity"), "\(row["nan"])")
        #expect(row["half"] == .text("12.5") && row["nothing"] == .null, "\(row["nothing"])")
        #expect(row["nt"].string?.isEmpty == false)
        for (expression, column) in [
            ("now()", "ts"), ("DATE '2024-01-01'", "d"), ("42::oid", "o"), ("ARRAY[1, 2]", "a"),
            ("INTERVAL '1 day'", "i"), ("ARRAY['happy', 'sad']::\(mood)[]", "ea"),
        ] {
            let refused = await #expect(throws: UnraceError.self) {
                _ = try await store.withTransaction { tx in try await tx.query("SELECT \(expression) AS \(column)") }
            }
            #expect(
                refused?.code == .invalidArgument && (refused?.detail ?? "").contains("column \(column)"),
                "\(expression): \(String(describing: refused))"
            )
        }
        try await store.withTransaction { tx in try await tx.execute("DROP TYPE \(mood)") }
    }
}
