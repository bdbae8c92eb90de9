/**
 * Embedded PostgreSQL for development and tests: PGlite (PostgreSQL in WASM)
 * on a loopback port, one connection at a time (`connect(postgres)` gives a
 * client configured for that).
 *
 * @example Run a transaction on embedded PostgreSQL
 * ```ts
 * import assert from "node:assert/strict";
 * import postgres from "postgres";
 * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
 *
 * await using db = await startEmbeddedPostgres();
 * const sql = db.connect(postgres); // max: 1, ended by db.close()
 * await sql.begin((tx) => tx`create table notes as select 'hello' as body`);
 * const [note] = await sql`select body from notes`;
 * assert.equal(note?.body, "hello");
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
