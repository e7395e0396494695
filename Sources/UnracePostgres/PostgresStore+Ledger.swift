import PostgresNIO
import Unrace
import UnraceCore
import UnraceSQL

// The ledger's bulk statements on PostgreSQL: one array parameter per column instead of one
// parameter per value, so a group of hundreds of transfers is a short statement the server
// parses in no time (`= ANY($1)` to read, `unnest` to write).
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
            saveBalancesAndInsertTransfers: { accounts, created in
                var binds = PostgresBindings(capacity: 18)
                binds.append(accounts.map(\.id))
                binds.append(accounts.map(\.debitsPending))
                binds.append(accounts.map(\.debitsPosted))
                binds.append(accounts.map(\.creditsPending))
                binds.append(accounts.map(\.creditsPosted))
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
                // One statement, whose two parts PostgreSQL runs in no set order: the balances (the
                // rows are locked, so the update waits for nobody; the CHECK constraints re-check
                // the balance rules) and the transfers (in id order).
                _ = try await tx.rows(
                    of: PostgresQuery(
                        unsafeSQL: """
                            WITH balances AS (
                              UPDATE unrace_accounts AS a
                              SET debits_pending = b.dn, debits_posted = b.dp, credits_pending = b.cn, credits_posted = b.cp
                              FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS b(id, dn, dp, cn, cp)
                              WHERE a.id = b.id
                            )
                            INSERT INTO unrace_transfers (\(SQLText.transferColumns))
                            SELECT id, debit, credit, amount, ledger, code, flags, NULLIF(pending, ''), timeout, state, created,
                                   CASE WHEN expiring THEN expires END
                            FROM unnest($6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
                                        $13::text[], $14::bigint[], $15::text[], $16::bigint[], $17::bigint[], $18::boolean[])
                              AS t(id, debit, credit, amount, ledger, code, flags, pending, timeout, state, created, expires, expiring)
                            """,
                        binds: binds
                    )
                )
            }
        )
    }
}
