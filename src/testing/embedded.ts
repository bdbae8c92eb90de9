/**
 * A Unit of Work test on embedded PostgreSQL (PGlite) in a few lines: a
 * database with your schema, a postgres.js client, a
 * `PostgresUnitOfWork` publishing on its own bus, and a recorder of what it
 * published. This entry point loads npm:postgres and PGlite; the driver-free
 * helpers are in `@aftercommit/core/testing`.
 *
 * @example Test what a Unit of Work saves and publishes
 * ```ts
 * import assert from "node:assert/strict";
 * import { DomainEvent } from "@aftercommit/core";
 * import { expectPublished } from "@aftercommit/core/testing";
 * import { startUnitOfWorkTest } from "@aftercommit/core/testing/embedded";
 *
 * class UserRegistered extends DomainEvent {
 *   constructor(readonly email: string) {
 *     super();
 *   }
 * }
 *
 * await using t = await startUnitOfWorkTest({
 *   schema: "create table users (email text primary key)",
 * });
 * await t.uow.run(async (tx) => {
 *   await tx.sql`insert into users ${tx.sql({ email: "ada@example.org" })}`;
 *   tx.publishAfterCommit(new UserRegistered("ada@example.org"));
 * });
 *
 * const rows = await t.sql`select email from users`;
 * assert.deepEqual(rows.map((row) => row.email), ["ada@example.org"]);
 * expectPublished(t.events, UserRegistered, { email: "ada@example.org" });
 * ```
 *
 * @module
 */
import postgres from "postgres";
import { EventBus } from "../application/event_bus.ts";
import { readOptions, text } from "../internal/rules.ts";
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
  /**
   * SQL run once before the test, such as `create table` statements (several
   * statements separated by `;` are fine).
   *
   * @default {undefined (an empty database)}
   */
  readonly schema?: string;
  /**
   * The bus the Unit of Work publishes on after each commit. Subscribe your
   * handlers to it.
   *
   * @default {a new EventBus}
   */
  readonly bus?: EventBus;
  /**
   * Options of the `PostgresUnitOfWork`, such as `isolationLevel` or
   * `outbox` (the outbox table is then created for you).
   *
   * @default {{}}
   */
  readonly unitOfWork?: Omit<PostgresUnitOfWorkOptions, "bus">;
}

/**
 * An embedded database with a Unit of Work over it; close it (or
 * `await using`) to stop the database.
 */
export interface UnitOfWorkTest extends AsyncDisposable {
  /** A postgres.js client of the database (one connection at a time). */
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
 * Starts an embedded PostgreSQL (PGlite, in memory), runs `schema`, and
 * gives a Unit of Work over it that publishes on a recorded bus. Starting
 * takes a second or more: share one per test file, and give each test its
 * own rows.
 *
 * @param options The schema, the bus and the Unit of Work's options.
 * @returns The running test database; close it when done.
 * @throws {TypeError} When an option has the wrong type.
 * @throws The database's error when `schema` fails (the database is
 * stopped then).
 */
export async function startUnitOfWorkTest(
  options: UnitOfWorkTestOptions = {},
): Promise<UnitOfWorkTest> {
  const { schema } = readOptions(options, {
    // An empty schema is no schema.
    schema: (value, what, action) =>
      value === "" ? undefined : text(
        undefined,
        'pass SQL such as "create table users (id uuid primary key)"',
      )(value, what, action),
  }, "start unit of work test");
  const { bus = new EventBus(), unitOfWork = {} } = options;
  // The recorder checks `bus`; the Unit of Work checks its own options.
  const events = new EventRecorder(bus);
  let db: EmbeddedPostgres | undefined;
  try {
    db = await startEmbeddedPostgres();
    const sql = db.connect(postgres);
    if (schema?.trim()) await sql.unsafe(schema).simple();
    const { outbox } = unitOfWork;
    if (outbox) {
      await migrateOutbox(sql, typeof outbox === "object" ? outbox : {});
    }
    const uow = new PostgresUnitOfWork(sql, { ...unitOfWork, bus });
    const database = db;
    const close = async (): Promise<void> => {
      events.stop();
      await database.close();
    };
    return { sql, uow, bus, events, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    events.stop();
    await db?.close();
    throw error;
  }
}
