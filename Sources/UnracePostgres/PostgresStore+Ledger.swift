import PostgresNIO
import Unrace
import UnraceCore
import UnraceSQL

// The ledger's bulk statements on PostgreSQL: one array parameter per column instead of one
// parameter per value, so a group of hundreds of transfers is a short statement the server
// parses in no time (`= ANY($1)` to read, `unnest` to insert).
extension PostgresStore {
    static func bulkStatements(_ tx: PostgresTransaction) -> SQLBulkStatements {
        SQLBulkStatements(
            fetchTransfers: { ids in
                var binds = PostgresBindings(capacity: 1)
                binds.append(ids)
                return try await tx.rows(
                    of: PostgresQuery(
                        unsafeSQL: """
                            SELECT \(SQLText.transferColumns) FROM unrace_transfers WHERE id = ANY($1)
                            UNION ALL
                            SELECT \(SQLText.failureColumns) FROM unrace_transfer_failures WHERE id = ANY($1)
                            """,
                        binds: binds
                    )
                )
            },
            insertTransfers: { created in
                var binds = PostgresBindings(capacity: 13)
                binds.append(created.map(\.transfer.id))
                binds.append(created.map(\.transfer.debitAccount))
                binds.append(created.map(\.transfer.creditAccount))
                binds.append(created.map(\.transfer.amount))
                binds.append(created.map(\.transfer.ledger))
                binds.append(created.map(\.transfer.code))
                binds.append(created.map(\.transfer.flags.rawValue))
                binds.append(created.map { $0.transfer.pendingID ?? "" })
                binds.append(created.map(\.transfer.timeoutMilliseconds))
                binds.append(created.map(\.state.rawValue))
                binds.append(created.map(\.createdAt.milliseconds))
                binds.append(created.map { $0.expiresAt?.milliseconds ?? 0 })
                binds.append(created.map { $0.expiresAt != nil })
                _ = try await tx.rows(
                    of: PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO unrace_transfers (\(SQLText.transferColumns))
                            SELECT id, debit, credit, amount, ledger, code, flags, NULLIF(pending, ''), timeout, state, created,
                                   CASE WHEN expiring THEN expires END
                            FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
                                        $8::text[], $9::bigint[], $10::text[], $11::bigint[], $12::bigint[], $13::boolean[])
                              AS t(id, debit, credit, amount, ledger, code, flags, pending, timeout, state, created, expires, expiring)
                            """,
                        binds: binds
                    )
                )
            }
        )
    }
}
