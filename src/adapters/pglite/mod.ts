/**
 * Embedded PostgreSQL for development and tests: PGlite (PostgreSQL in WASM)
 * on a loopback port, one connection at a time (`connect(postgres)` gives a
 * client configured for that).
 *
 * @example Run a Unit of Work on embedded PostgreSQL
 * ```ts
 * import assert from "node:assert/strict";
 * import postgres from "postgres";
 * import { EventBus } from "@aftercommit/core";
 * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
 * import { PostgresUnitOfWork } from "@aftercommit/core/postgres";
 *
 * class NoteSaved {}
 *
 * await using db = await startEmbeddedPostgres();
 * const sql = db.connect(postgres);
 * await sql`create table notes (body text)`;
 * const bus = new EventBus();
 * const seen: string[] = [];
 * bus.register(NoteSaved, async () => {
 *   const [row] = await sql`select count(*)::int as n from notes`;
 *   seen.push(`saved, ${row?.n} note`);
 * });
 * const uow = new PostgresUnitOfWork(sql, { bus });
 * await uow.run(async (tx) => {
 *   await tx.sql`insert into notes values ('hello')`;
 *   tx.publishAfterCommit(new NoteSaved());
 * });
 * assert.deepEqual(seen, ["saved, 1 note"]); // published after the commit
 * ```
 *
 * @module
 */
export {
  type EmbeddedClientOptions,
  type EmbeddedNotice,
  EmbeddedPostgres,
  type EmbeddedPostgresOptions,
  type EndableClient,
  startEmbeddedPostgres,
} from "./embedded_postgres.ts";
