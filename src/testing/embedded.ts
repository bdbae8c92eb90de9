/**
 * A Unit of Work test on embedded PostgreSQL (PGlite): a database with your
 * schema, a `PostgresUnitOfWork` over it and a recorder of what it
 * published. Loads npm:postgres and PGlite; the driver-free helpers are in
 * `@aftercommit/core/testing`.
 *
 * @example Test what a Unit of Work saves and publishes
 * ```ts
 * import assert from "node:assert/strict";
 * import { expectPublished } from "@aftercommit/core/testing";
 * import { startUnitOfWorkTest } from "@aftercommit/core/testing/embedded";
 *
 * class UserRegistered {
 *   constructor(readonly email: string) {}
 * }
 * const schema = "create table users (email text primary key)";
 * await using t = await startUnitOfWorkTest({ schema });
 * const email = "ada@example.org";
 * await t.uow.run(async (tx) => {
 *   await tx.sql`insert into users values (${email})`;
 *   tx.publishAfterCommit(new UserRegistered(email));
 * });
 *
 * const rows = await t.sql`select email from users`;
 * assert.deepEqual(rows.map((row) => row.email), [email]);
 * expectPublished(t.events, UserRegistered, { email });
 * ```
 *
 * @module
 */
import postgres from "postgres";
import { EventBus } from "../application/event_bus.ts";
import { assertObject, text } from "../internal/rules.ts";
import {
  type EmbeddedPostgres,
  startEmbeddedPostgres,
} from "../adapters/pglite/mod.ts";
import {
  migrateOutbox,
  PostgresUnitOfWork,
  type PostgresUnitOfWorkOptions,
} from "../adapters/postgres/mod.ts";
import { EventRecorder } from "./event_recorder.ts";

/** The postgres.js client of a {@linkcode UnitOfWorkTest}. */
export type UnitOfWorkTestSql = postgres.Sql;

/** Options of {@linkcode startUnitOfWorkTest}. */
export interface UnitOfWorkTestOptions {
  /** SQL run first, such as `create table` statements. Default: none. */
  readonly schema?: string;
  /** The bus the Unit of Work publishes on. Default: a new EventBus. */
  readonly bus?: EventBus;
  /** The `PostgresUnitOfWork`'s options (`outbox` creates its table). Default: `{}`. */
  readonly unitOfWork?: Omit<PostgresUnitOfWorkOptions, "bus">;
}

/** An embedded database with a Unit of Work over it; close it when done. */
export interface UnitOfWorkTest extends AsyncDisposable {
  /** A postgres.js client of the database. */
  readonly sql: UnitOfWorkTestSql;
  /** A Unit of Work over `sql` that publishes on `bus` after each commit. */
  readonly uow: PostgresUnitOfWork<UnitOfWorkTestSql>;
  /** The bus the Unit of Work publishes on. */
  readonly bus: EventBus;
  /** Every event published on `bus` since the start. */
  readonly events: EventRecorder;
  /** Stops recording, ends the client and stops the database. */
  close(): Promise<void>;
}

/**
 * Starts an in-memory PGlite, runs `schema` (its error stops the database)
 * and gives a Unit of Work over it publishing on a recorded bus. Starting
 * takes a second or more: share one per test file.
 */
export async function startUnitOfWorkTest(
  options: UnitOfWorkTestOptions = {},
): Promise<UnitOfWorkTest> {
  const action = "start unit of work test";
  assertObject(options, "options", action);
  const { schema = "", bus = new EventBus(), unitOfWork = {} } = options;
  const hint = 'pass SQL such as "create table users (id uuid primary key)"';
  if (schema !== "") text(undefined, hint)(schema, "options.schema", action);
  const events = new EventRecorder(bus);
  let db: EmbeddedPostgres | undefined;
  let uow: PostgresUnitOfWork<postgres.Sql> | undefined;
  const close = async (): Promise<void> => {
    events.stop();
    await uow?.flush(); // the outbox marks still waiting
    await db?.close();
  };
  try {
    db = await startEmbeddedPostgres();
    const sql = db.connect(postgres);
    if (schema.trim()) await sql.unsafe(schema).simple();
    const { outbox } = unitOfWork;
    if (outbox) {
      await migrateOutbox(sql, typeof outbox === "object" ? outbox : {});
    }
    uow = new PostgresUnitOfWork(sql, { ...unitOfWork, bus });
    return { sql, uow, bus, events, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    await close();
    throw error;
  }
}
