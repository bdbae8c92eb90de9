// Jobs enqueued for a queue this process works start at their insert: written
// claimed (as pg-boss's fetch leaves a job) and run by a free loop, with no
// NOTIFY and no fetch; then they are pg-boss jobs like any other (fenced
// complete()/fail(), retries, dead letter, the supervisor's expiry).
//
// Only where that insert is what a free loop's fetch would have done: a
// 'standard' queue (other policies keep unique indexes over a key's queued or
// active jobs), no heartbeat, every job ready now, at most one batch, and no
// ready job of the queue waiting (it goes first). A loop that fetches while
// handed-over batches hold every loop gives its jobs back (pg-boss's restore)
// and waits for one.
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import type { Job as PgBossJob, JobInsert, JobResult, PgBoss } from "pg-boss";
import { loggableError } from "../../internal/loggable_error.ts";

const logger = getLogger(["aftercommit", "jobs"]);

/** A `work()` of this process and its loops. */
export class LocalWorker {
  // Calls a function in `work()`'s async context, not the enqueuer's (whose
  // unit of work, batch and request a job must not see).
  readonly enter: <R>(fn: () => R) => R = AsyncLocalStorage.snapshot();
  /** The ids of the jobs of its batches running now. */
  readonly running = new Set<string>();
  /** pg-boss's ids of its loops, to wake them. */
  workerIds: readonly string[] = [];
  /** Settles at the next release of a loop. */
  released = Promise.withResolvers<void>();
  #busy = 0;

  constructor(
    readonly name: string,
    readonly loops: number,
    readonly batchSize: number,
    /** Runs one attempt as a fetched job's; never throws. */
    readonly run: (job: PgBossJob<unknown>) => Promise<JobResult>,
  ) {}

  /** Takes a loop for a batch; `false` when every loop is taken. */
  take(): boolean {
    if (this.#busy >= this.loops) return false;
    this.#busy++;
    return true;
  }

  /** Forgets the batch of `ids`, and frees its loop if it `took` one. */
  release(ids: readonly string[], took = true): void {
    for (const id of ids) this.running.delete(id);
    if (!took) return;
    this.#busy--;
    this.released.resolve();
    this.released = Promise.withResolvers();
  }
}

// One handed-over insert: its jobs not settled yet; `closing` once they were
// failed for it (expiry, shutdown).
interface Batch {
  readonly abort: AbortController;
  readonly open: Set<PgBossJob<unknown>>;
  closing?: Promise<void>;
  done?: Promise<void>;
}

/** This process's workers, as the jobs enqueued here can start on them. */
export class LocalStarts {
  readonly #workers = new Map<string, LocalWorker[]>();
  // The queue's job table when its jobs may start here, else undefined.
  readonly #tables = new Map<string, Promise<string | undefined>>();
  readonly #running = new Set<Batch>();
  readonly #stopped = Promise.withResolvers<void>();
  #stopping = false;

  constructor(
    private readonly boss: PgBoss,
    private readonly schema: string,
  ) {}

  /** Lets jobs enqueued for `worker.name` start on `worker`. */
  add(worker: LocalWorker): void {
    const list = this.#workers.get(worker.name);
    if (list === undefined) this.#workers.set(worker.name, [worker]);
    else list.push(worker);
  }

  /** Wakes this process's loops of queue `name`: they fetch now. */
  wake(name: string): void {
    for (const worker of this.#workers.get(name) ?? []) {
      for (const id of worker.workerIds) this.boss.notifyWorker(id);
    }
  }

  /**
   * Inserts jobs of queue `name` claimed and runs them on a free worker: the
   * ids inserted, or `undefined` when they cannot start here.
   */
  async insertStarted(
    name: string,
    jobs: readonly JobInsert[],
  ): Promise<string[] | undefined> {
    const all = this.#workers.get(name);
    const workers = all?.filter((w) => jobs.length <= w.batchSize);
    if (this.#stopping || !workers?.length) return undefined;
    // Their ids go with the statement: a worker that busy gains little.
    if (all!.reduce((n, w) => n + w.running.size, 0) > 1000) return undefined;
    const table = await this.#table(name);
    const worker = table !== undefined && !this.#stopping &&
      workers.find((w) => w.take());
    if (!worker) return undefined;
    const batch: Batch = { abort: new AbortController(), open: new Set() };
    this.#running.add(batch);
    // Counted as running now, so that a concurrent insert here does not take
    // them for another process's work.
    const ids = jobs.map((job) => job.id!);
    for (const id of ids) worker.running.add(id);
    const running = all!.flatMap((w) => [...w.running]);
    const inserted = this.boss.getDb().executeSql(
      this.#insertSql(table),
      [name, JSON.stringify(jobs), running],
    ).then(({ rows: [row] }) =>
      row as { waiting: boolean; jobs: PgBossJob<unknown>[] }
    );
    batch.done = worker.enter(() => this.#run(worker, batch, inserted))
      .finally(() => {
        this.#running.delete(batch);
        worker.release(ids);
      });
    const { waiting, jobs: started } = await inserted;
    return waiting ? undefined : started.map((job) => job.id);
  }

  /**
   * Gives back `jobs`, fetched while handed-over batches hold every loop of
   * `worker`, and emptied so that pg-boss settles none, then waits for a loop
   * and wakes them; `false` when they could not be given back: run them.
   */
  async giveBack(
    worker: LocalWorker,
    jobs: PgBossJob<unknown>[],
  ): Promise<boolean> {
    // Taken now: a loop released during the restore ends the wait.
    const released = worker.released.promise;
    const table = await this.#table(worker.name);
    if (table === undefined) return false;
    try {
      // pg-boss's restore (plans.restoreJobs), fenced to this claim.
      await this.boss.getDb().executeSql(
        `UPDATE ${this.schema}.${table} SET state = 'created',
           started_on = NULL, heartbeat_on = NULL, upsert_by_key = NULL
         WHERE name = $1 AND state = 'active'
           AND (id::text || ':' || retry_count::text) = ANY($2::text[])`,
        [worker.name, jobs.map((job) => `${job.id}:${job.retryCount}`)],
      );
    } catch (error) {
      logger.warn(
        "Cannot give back jobs of queue {jobName} fetched beyond its concurrency; they run now: {error}",
        { jobName: worker.name, error: loggableError(error) },
      );
      return false;
    }
    // Aborted when pg-boss gives up on the batch (expiry, end of stop()).
    const signal = jobs[0]!.signal;
    jobs.length = 0;
    await untilAbort(signal, released, this.#stopped.promise);
    if (!this.#stopping) this.wake(worker.name);
    return true;
  }

  /** Waits up to `timeoutMs` for the jobs running, then fails the rest. */
  async stop(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    this.#stopped.resolve();
    await untilAbort(AbortSignal.timeout(timeoutMs), this.#drained());
    for (const batch of this.#running) {
      this.#close(batch, { value: "pg-boss shut down while active" }, false);
    }
    await this.#drained();
  }

  async #drained(): Promise<void> {
    while (this.#running.size > 0) {
      await Promise.all([...this.#running].map((batch) => batch.done));
    }
  }

  #table(name: string): Promise<string | undefined> {
    let table = this.#tables.get(name);
    if (table === undefined) {
      // A queue's policy is set at its creation; this adapter sets no
      // heartbeat. A failed lookup is tried again on the next insert.
      table = this.boss.getDb().executeSql(
        `SELECT table_name FROM ${this.schema}.queue WHERE name = $1
           AND policy = 'standard' AND heartbeat_seconds IS NULL`,
        [name],
      ).then(({ rows }) => (rows[0] as { table_name?: string })?.table_name);
      this.#tables.set(name, table);
      table.catch(() => this.#tables.delete(name));
    }
    return table.catch(() => undefined);
  }

  // pg-boss's insert (plans.insertJobs) with its fetch's claim of a first
  // attempt (plans.fetchNextJob). Nothing is inserted (`waiting`) while a job
  // of the queue is ready (a fetch takes it first) or active but not running
  // here ($3: on its way to a loop, or another process's). A used id inserts
  // and starts nothing.
  #insertSql(table: string): string {
    const s = this.schema;
    const jobs = `${s}.${table}`;
    return `
      WITH t AS (SELECT ${s}.job_now() AS now),
      backlog AS (
        SELECT EXISTS (SELECT 1 FROM ${jobs} WHERE name = $1
          AND state < 'active' AND NOT blocked
          AND start_after <= (SELECT now FROM t))
        OR EXISTS (SELECT 1 FROM ${jobs} WHERE name = $1
          AND state = 'active' AND id <> ALL($3::uuid[])) AS ready
      ),
      ins AS (
        INSERT INTO ${jobs} (id, name, data, priority, state, start_after,
          created_on, started_on, heartbeat_on, expire_seconds,
          deletion_seconds, keep_until, retry_limit, retry_delay,
          retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds)
        SELECT j.id, $1, j.data, COALESCE(j.priority, 0),
          'active'::${s}.job_state, t.now, t.now, t.now, t.now,
          q.expire_seconds, q.deletion_seconds,
          t.now + q.retention_seconds * interval '1s',
          q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max,
          q.policy, q.dead_letter, q.heartbeat_seconds
        FROM json_to_recordset($2::text::json)
          AS j (id uuid, priority integer, data jsonb)
        CROSS JOIN t LEFT JOIN ${s}.queue q ON q.name = $1
        WHERE NOT (SELECT ready FROM backlog)
        ON CONFLICT DO NOTHING
        RETURNING id, name, data, retry_count AS "retryCount",
          expire_seconds AS "expireInSeconds",
          heartbeat_seconds AS "heartbeatSeconds",
          group_id AS "groupId", group_tier AS "groupTier"
      )
      SELECT (SELECT ready FROM backlog) AS waiting,
        COALESCE((SELECT json_agg(ins) FROM ins), '[]'::json) AS jobs`;
  }

  // pg-boss's processing of a fetched batch (manager.#processJobs): one
  // signal, aborted at the batch's expiry, which fails the jobs still running.
  async #run(
    worker: LocalWorker,
    batch: Batch,
    inserted: Promise<{ jobs: PgBossJob<unknown>[] }>,
  ): Promise<void> {
    // On an error the enqueue rejects with it.
    const rows = await inserted.then(({ jobs }) => jobs, () => []);
    if (rows.length === 0) return;
    const jobs = rows.map((row) => ({ ...row, signal: batch.abort.signal }));
    if (batch.closing !== undefined) { // stop() gave up before the insert.
      const output = new Error("pg-boss shut down before the handler started");
      return await this.#settle(jobs, output);
    }
    for (const job of jobs) batch.open.add(job);
    const seconds = Math.max(...jobs.map((job) => job.expireInSeconds));
    const expired = new Error(`handler execution exceeded ${seconds}s`);
    const ms = Math.max(1, seconds) * 1000;
    const timer = setTimeout(() => this.#close(batch, expired, true), ms);
    try {
      await Promise.all(jobs.map(async (job) => {
        const { status, output } = await worker.run(job);
        // A job failed for the batch is no longer this attempt's.
        if (!batch.open.delete(job)) return;
        await this.#settle([job], status === "completed" ? undefined : output);
      }));
    } finally {
      clearTimeout(timer);
    }
    await batch.closing;
  }

  // Fails the jobs still running and aborts their signal: at the expiry the
  // abort first (pg-boss's timeout race), at shutdown the fail first (its
  // failWip); either way the handler's own end finds nothing to settle.
  #close(batch: Batch, output: object, abortFirst: boolean): void {
    if (batch.closing !== undefined) return;
    const open = [...batch.open];
    batch.open.clear();
    if (abortFirst) batch.abort.abort();
    batch.closing =
      (open.length === 0 ? Promise.resolve() : this.#settle(open, output))
        .finally(() => batch.abort.abort());
  }

  // Completes `jobs` (of one queue), or fails them with `output`. A failure
  // to settle leaves them active until their expiry: logged.
  async #settle(jobs: PgBossJob<unknown>[], output?: object): Promise<void> {
    const { name, id } = jobs[0]!;
    try {
      // Fenced to each job's attempt (its retryCount).
      if (output === undefined) await this.boss.complete(name, jobs);
      else {
        await this.boss.fail(name, jobs, output);
        // A retry without delay is ready now, no longer active: the loops
        // that attempt() woke found it active, and wait for their poll.
        this.wake(name);
      }
    } catch (error) {
      logger.error(
        "Cannot settle job {jobName} {jobId}; it stays active until its expiry: {error}",
        { jobName: name, jobId: id, error: loggableError(error) },
      );
    }
  }
}

const ABORTED = Symbol("aborted");

/** Waits for the first of `promises` or the abort: `true` if the abort. */
export async function untilAbort(
  signal: AbortSignal,
  ...promises: Promise<unknown>[]
): Promise<boolean> {
  if (signal.aborted) return true;
  const aborted = Promise.withResolvers<typeof ABORTED>();
  const abort = () => aborted.resolve(ABORTED);
  signal.addEventListener("abort", abort, { once: true });
  try {
    return await Promise.race([...promises, aborted.promise]) === ABORTED;
  } finally {
    signal.removeEventListener("abort", abort);
  }
}
