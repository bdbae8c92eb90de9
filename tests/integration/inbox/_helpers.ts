// A fresh inbox table and a ledger table for the effects of one test step.
import type postgres from "postgres";
import { Inbox, migrateInbox } from "../../../src/adapters/postgres/mod.ts";

/** Migrates a new inbox table and creates a ledger with `columns`. */
export async function freshInbox(
  sql: postgres.Sql,
  columns: string,
): Promise<{ inbox: Inbox; ledger: string; table: string }> {
  const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const table = `inbox_${suffix}`;
  const ledger = `ledger_${suffix}`;
  await migrateInbox(sql, { table });
  await sql.unsafe(`create table "${ledger}" (${columns})`);
  return { inbox: new Inbox({ table }), ledger, table };
}
