// The Unit of Work over `npm:postgres` (postgres.js).
import type postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import {
  CommitOutcomeUnknownError,
  type EventDelay,
  PublishAfterCommitError,
  UnitOfWork,
  type UnitOfWorkContext,
  type UnitOfWorkOptions,
} from "../../application/unit_of_work.ts";
import { isConnectionError } from "../../internal/connection_error.ts";
import { errorType } from "../../internal/loggable_error.ts";
import {
  expected,
  fail,
  number,
  oneOf,
  readOptions,
} from "../../internal/rules.ts";
import { isOutage, Outbox, type PreparedBatch } from "./_outbox.ts";
import { DoneMarks } from "./_done_marks.ts";
import type { OutboxCheckpoint, OutboxOptions } from "./outbox.ts";
import {
  assertClient,
  type Begun,
  type PostgresClient,
  reservedTransaction,
  type Sql,
  withDeadline,
} from "./_transaction.ts";

const logger = getLogger(["aftercommit", "uow"]);

/** The transaction isolation levels PostgreSQL implements. */
export type IsolationLevel =
  | "read committed"
  | "repeatable read"
  | "serializable";

/** Options of {@linkcode PostgresUnitOfWork}. */
export interface PostgresUnitOfWorkOptions extends UnitOfWorkOptions {
  /**
   * The isolation level of every transaction.
   * @default {the server's default_transaction_isolation}
   */
  readonly isolationLevel?: IsolationLevel;
  /**
   * Outbox mode: events are written to the outbox in the transaction and
   * the {@linkcode OutboxRelay} dispatches those left undone. Every event
   * class must be registered; run {@linkcode migrateOutbox} first.
   * @default {false (events are lost if the process dies before publishing)}
   */
  readonly outbox?: boolean | OutboxOptions;
  /**
   * Seconds `run` asks the database whether a transaction whose `COMMIT`
   * lost its connection committed, before a {@linkcode CommitOutcomeUnknownError}.
   * @default {15}
   */
  readonly commitCheckSeconds?: number;
}

/** A client's transaction `sql`: for `postgres.Sql<T>`, `TransactionSql<T>`. */
export type PostgresTransactionOf<S extends PostgresClient> = Parameters<
  Parameters<S["begin"]>[1]
>[0];

/** What `work` receives in {@linkcode PostgresUnitOfWork.run}. */
export interface PostgresContext<Tx> extends UnitOfWorkContext {
  /** The transaction's `sql`: its queries are in the transaction. */
  readonly sql: Tx;
}

// What `beforeCommit` hands on in outbox mode: the batch and its insert. A
// class of its own, so no value a subclass returns is taken for one.
class OutboxWrite {
  constructor(
    readonly batch: PreparedBatch,
    readonly insert: Promise<void>,
  ) {}
}

/**
 * A Unit of Work over a postgres.js client: each `run` is one transaction on
 * a connection reserved from the pool; the tracked aggregates' events are
 * published after its `COMMIT`. The example is in the module doc.
 */
export class PostgresUnitOfWork<S extends PostgresClient> extends UnitOfWork<
  PostgresTransactionOf<S>,
  PostgresContext<PostgresTransactionOf<S>>,
  object | undefined
> {
  readonly #sql: Sql;
  readonly #begin: string;
  readonly #commitCheckMs: number;
  readonly #outbox: Outbox | undefined;
  readonly #done: DoneMarks | undefined;

  /** Creates a Unit of Work on a postgres.js client (a pool). */
  constructor(sql: S, options: PostgresUnitOfWorkOptions = {}) {
    super(options);
    const action = "create PostgresUnitOfWork";
    assertClient(sql, action);
    const { isolationLevel, commitCheckSeconds, outbox } = readOptions(
      options,
      {
        isolationLevel: oneOf(
          ["read committed", "repeatable read", "serializable"],
        ),
        commitCheckSeconds: number(0, 15),
        outbox: (value, what, action) =>
          // null too, as before: no outbox.
          ["undefined", "boolean", "object"].includes(typeof value) &&
            !Array.isArray(value)
            ? value ?? false
            : expected(
              action,
              `${what} to be true or an options object`,
              value,
            ),
      },
      action,
    );
    this.#sql = sql;
    this.#begin = isolationLevel === undefined
      ? "begin"
      : `begin isolation level ${isolationLevel}`;
    this.#commitCheckMs = commitCheckSeconds * 1000;
    if (outbox !== false) {
      const box = this.#outbox = new Outbox(
        outbox === true ? {} : outbox,
        `${action} in outbox mode`,
        "options.outbox",
      );
      this.#done = new DoneMarks((ids) => box.markDone(sql, ids));
    }
  }

  /**
   * Resolves when the outbox rows of the runs returned so far are marked done
   * (in the background); await it before `sql.end()`.
   */
  flush(): Promise<void> {
    return this.#done?.flush() ?? Promise.resolve();
  }

  /** Whether this unit of work writes its events to the outbox. */
  get outboxMode(): boolean {
    return this.#outbox !== undefined;
  }

  /** In outbox mode, delayed events are written with their "not before". */
  protected override get acceptsDelayedEvents(): boolean {
    return this.outboxMode;
  }

  /** The client: two units of work on one client refuse to nest. */
  protected override get resource(): object {
    return this.#sql;
  }

  /**
   * `BEGIN` … `COMMIT` on a reserved connection; a lost `COMMIT` is checked.
   * The outbox insert `beforeCommit` started goes out with the `COMMIT`.
   */
  protected override transaction<T>(
    body: (handle: PostgresTransactionOf<S>) => Promise<T>,
  ): Promise<T> {
    return reservedTransaction(
      this.#sql,
      this.#begin,
      (conn) => body(withSavepoint(conn) as PostgresTransactionOf<S>),
      (begun, error) => this.#committed(begun, error),
      (result) => {
        const written = (result as { written?: unknown } | undefined)?.written;
        return written instanceof OutboxWrite ? written.insert : undefined;
      },
    );
  }

  /** Gives `work` the transaction's `sql`, `track` and `publishAfterCommit`. */
  protected override createContext(
    handle: PostgresTransactionOf<S>,
    { track, publishAfterCommit }: UnitOfWorkContext,
  ): PostgresContext<PostgresTransactionOf<S>> {
    return { sql: handle, track, publishAfterCommit };
  }

  /**
   * In outbox mode, starts the events' insert; `transaction` awaits it with
   * the `COMMIT`. An override returns what this returned.
   */
  protected override beforeCommit(
    handle: PostgresTransactionOf<S>,
    events: readonly object[],
    delays?: readonly (EventDelay | undefined)[],
  ): object | undefined {
    const outbox = this.#outbox;
    if (outbox === undefined || events.length === 0) return undefined;
    const batch = outbox.prepare(events, delays);
    const { table, leaseSeconds } = outbox;
    const insert = table.insert(handle, batch.json, leaseSeconds).catch(
      (error: unknown) => {
        const missing = table.missing(error);
        if (!missing) throw error;
        const message = `Cannot write the events to the outbox: ${missing}`;
        // Named, as the run's log line gives the error's name only.
        const name = "OutboxTableMissingError";
        throw Object.assign(new Error(message, { cause: error }), { name });
      },
    );
    insert.catch(() => {}); // its error fails the COMMIT, in transaction()
    return new OutboxWrite(batch, insert);
  }

  /**
   * In outbox mode, dispatches the committed undelayed events (in one
   * `bus.batch` when the bus has it) and queues them to be marked done.
   */
  protected override async publishCommitted(
    events: readonly object[],
    written: object | undefined,
  ): Promise<void> {
    const outbox = this.#outbox;
    if (outbox === undefined) return super.publishCommitted(events, written);
    if (!(written instanceof OutboxWrite)) {
      fail(
        "dispatch the committed events",
        "an override of beforeCommit must return what super.beforeCommit() returned; the relay dispatches these events",
      );
    }
    const items = written.batch.items.filter((item) => !item.delayed);
    if (items.length === 0) return;
    // An event recorded twice is dispatched twice, as publishAll would.
    const ids = [...new Set(items.map((item) => item.id))];
    await this.outboxCheckpoint("committed", ids);
    const [sql, bus] = [this.#sql, this.bus];
    const failed = new Set<string>();
    const errors: unknown[] = [];
    let retried = false;
    const dispatchAll = async () => {
      for (const item of items) {
        const failure = await outbox.dispatch(sql, bus, item);
        if (failure === undefined) continue;
        failed.add(item.id);
        errors.push(failure.error);
        retried ||= failure.outcome !== "parked";
      }
    };
    try {
      await (bus.batch === undefined ? dispatchAll() : bus.batch(dispatchAll));
    } catch (error) {
      // The batch's own write failed: what the dispatches handed it is lost.
      const rest = items.filter((item) => !failed.has(item.id));
      if (isOutage(error)) {
        const ids = rest.map((item) => item.id);
        const delay = outbox.retryDelaySeconds;
        await outbox.deferOutage(sql, ids, delay, rest[0], error);
      } else {
        for (const item of rest) await outbox.recordFailure(sql, item, error);
      }
      for (const item of rest) failed.add(item.id);
      errors.push(error);
      retried = true;
    }
    const done = ids.filter((id) => !failed.has(id));
    await this.outboxCheckpoint("dispatched", done);
    this.#done!.add(done);
    if (errors.length === 0) return;
    throw new PublishAfterCommitError(
      `Unit of work committed, but dispatching ${failed.size} of its ${ids.length} events failed; ${
        retried
          ? "the outbox keeps them and the relay will dispatch them again"
          : "they reached the attempt limit and are parked in the outbox"
      }`,
      {
        cause: errors.length === 1
          ? errors[0]
          : new AggregateError(errors, "Several events failed to dispatch"),
        relayWillRetry: retried,
      },
    );
  }

  /** A seam for crash tests (outbox mode); applications do not override it. */
  protected outboxCheckpoint(
    _stage: OutboxCheckpoint,
    _eventIds: readonly string[],
  ): void | Promise<void> {}

  // Whether the transaction committed, asked on the pool until it can tell.
  async #committed(begun: Begun, cause: unknown): Promise<boolean> {
    const deadline = performance.now() + this.#commitCheckMs;
    let status: Awaited<ReturnType<typeof xactStatus>> | undefined = "retry";
    for (
      let delay = 25, left;
      status === "retry" && (left = deadline - performance.now()) > 0;
      delay = Math.min(delay * 2, 1000)
    ) {
      status = await withDeadline(xactStatus(this.#sql, begun), left);
      if (typeof status === "boolean") {
        logger.warn(
          "The connection was lost during COMMIT ({errorType}); the database says the transaction {status}",
          {
            errorType: errorType(cause),
            status: status ? "committed" : "did not commit",
          },
        );
        return status;
      }
      if (status === "retry") {
        await new Promise((ok) => setTimeout(ok, Math.min(delay, left!)));
      }
    }
    const outbox = this.#outbox !== undefined;
    throw new CommitOutcomeUnknownError(
      `Unit of work outcome unknown: the connection was lost during COMMIT and ${
        status === "ambiguous"
          ? "the server crashed since, so the id it says committed may be another transaction's"
          : "the database could not say whether the transaction committed"
      }; ${
        outbox
          ? "if it did, the outbox relay delivers its events"
          : "its events were not published"
      }`,
      { cause, relayWillRetry: outbox },
    );
  }
}

// The reserved connection as the transaction's `sql`, with a `savepoint`.
function withSavepoint(conn: postgres.ReservedSql): unknown {
  let count = 0;
  return Object.assign(conn, {
    async savepoint<T>(
      name: string | ((sql: unknown) => T | Promise<T>),
      fn?: (sql: unknown) => T | Promise<T>,
    ): Promise<T> {
      const work = typeof name === "function" ? name : fn;
      if (typeof work !== "function") {
        expected(
          "create a savepoint",
          "a function that receives the transaction's sql",
          work,
        );
      }
      const id = conn(
        `s${count++}${typeof name === "string" ? `_${name}` : ""}`,
      );
      await conn`savepoint ${id}`;
      try {
        return await work(conn);
      } catch (error) {
        await conn`rollback to ${id}`;
        throw error;
      }
    },
  });
}

// What the server says of `begun`: true committed, false not, "retry" (no
// answer, or still in progress), "unknown", or "ambiguous" (committed, but
// after a crash). A crash can lose a transaction whose WAL was not flushed
// and hand its id out again; crash recovery resets the statistics (a clean
// restart keeps them). After one, an id at or above the latest checkpoint's
// next id was not ours; below it, it cannot be told. The start and reset
// times are read with BEGIN and compared for equality: a server that took
// over the address since (a failover) differs, however early it started.
async function xactStatus(
  sql: Sql,
  begun: Begun,
): Promise<boolean | "retry" | "unknown" | "ambiguous"> {
  let row;
  try {
    [row] = await sql<
      [{ status: string; started: string; reset: string | null }]
    >`select pg_xact_status(${begun.xid}::xid8) as status,
        pg_postmaster_start_time()::text as started,
        (select stats_reset::text from pg_stat_wal) as reset`;
  } catch (error) {
    if (isConnectionError(error)) return "retry";
    // "Transaction ID is in the future": lost in a crash, not reused yet.
    return (error as { code?: string }).code === "22023" ? false : "unknown";
  }
  const { status, started, reset } = row;
  if (reset === begun.reset) {
    if (status === "committed") return true;
    // Restarted cleanly: ours cannot still be in progress.
    return status === "aborted" || started !== begun.started ? false : "retry";
  }
  // A crash since BEGIN: not committed means lost (a running id is another's).
  if (status !== "committed") return false;
  try {
    const [{ next_xid }] = await sql<[{ next_xid: string }]>`
      select next_xid from pg_control_checkpoint()`;
    const [epoch, xid] = next_xid.split(":").map(BigInt);
    return BigInt(begun.xid) >= ((epoch! << 32n) | xid!) ? false : "ambiguous";
  } catch (error) {
    return isConnectionError(error) ? "retry" : "unknown";
  }
}
