/**
 * {@linkcode PgBossJobQueue}: the {@linkcode JobQueue} port on pg-boss.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  fromPglite,
  type Job as PgBossJob,
  type JobInsert,
  type JobResult,
  PgBoss,
  type PGliteLike,
} from "pg-boss";
import {
  assertQueueName,
  type EnqueueOptions,
  type JobHandler,
  type JobQueue,
  type JobRequest,
  type PreparedJob,
  prepareJob,
  type WorkOptions,
} from "../../application/job_queue.ts";
import { inSpan, SpanKind, tracing } from "../../application/_telemetry.ts";
import { describe } from "../../internal/describe.ts";
import { loggableError } from "../../internal/loggable_error.ts";
import {
  assertObject,
  boolean,
  fail,
  integer,
  matches,
  number,
  readOptions,
  type Rule,
} from "../../internal/rules.ts";
import {
  type JobQueueStats,
  type JobQueueStatsOptions,
  readJobQueueStats,
} from "./job_queue_stats.ts";
import {
  DEAD_LETTER_SUFFIX,
  type DeadLetter,
  type DeadLetterListOptions,
  DeadLetters,
  type DeadLetterSelection,
} from "./dead_letters.ts";
import { runJob, stamped } from "./_run_job.ts";

export type {
  DeadLetter,
  DeadLetterListOptions,
  DeadLetterSelection,
} from "./dead_letters.ts";

const logger = getLogger(["aftercommit", "jobs"]);

/**
 * How a queue retries, expires and keeps jobs, applied when the adapter
 * creates the queue on first use (a queue that exists keeps its settings).
 * pg-boss's queue options, in seconds, with a dead-letter switch.
 */
export interface QueueSettings {
  /** Retries after the first attempt. @default {5} */
  readonly retryLimit?: number;
  /** Seconds before the first retry. @default {1} */
  readonly retryDelaySeconds?: number;
  /** Double the delay at each retry (with jitter). @default {true} */
  readonly retryBackoff?: boolean;
  /** The longest retry delay with backoff, in seconds. @default {300} */
  readonly retryDelayMaxSeconds?: number;
  /** Seconds an attempt may run; its `signal` is aborted then. @default {900} */
  readonly expireInSeconds?: number;
  /** Seconds a job (or a dead letter) may wait to start. @default {1209600} */
  readonly retentionSeconds?: number;
  /** Seconds a finished job is kept (its key stays used); 0: forever. @default {604800} */
  readonly deleteAfterSeconds?: number;
  /** Copy a job whose retries are used up to `<name>__dead`. @default {true} */
  readonly deadLetter?: boolean;
}

/** The settings of a queue that no option overrides. */
export const DEFAULT_QUEUE_SETTINGS: Readonly<Required<QueueSettings>> = Object
  .freeze({
    retryLimit: 5,
    retryDelaySeconds: 1,
    retryBackoff: true,
    retryDelayMaxSeconds: 300,
    expireInSeconds: 900,
    retentionSeconds: 1_209_600,
    deleteAfterSeconds: 604_800,
    deadLetter: true,
  });

/** Options of {@linkcode PgBossJobQueue.connect}. */
export interface PgBossJobQueueOptions {
  /** The schema of pg-boss's tables (a plain identifier). @default {"pgboss"} */
  readonly schema?: string;
  /** Settings of every queue, over {@linkcode DEFAULT_QUEUE_SETTINGS}. @default {{}} */
  readonly queueDefaults?: QueueSettings;
  /** Settings per queue name, over `queueDefaults`. @default {{}} */
  readonly queues?: Readonly<Record<string, QueueSettings>>;
  /**
   * Wake the workers of other processes with `LISTEN`/`NOTIFY` (needs a
   * session-pinned connection, not PgBouncer in transaction mode). This
   * process's workers are woken directly either way.
   *
   * @default {true}
   */
  readonly listenNotify?: boolean;
  /** Run pg-boss's maintenance (expiry, deletion) in this process. @default {true} */
  readonly supervise?: boolean;
  /**
   * Send the jobs of {@linkcode PgBossJobQueue.schedule}'s schedules from
   * this process (one job per occurrence however many processes do).
   *
   * @default {false}
   */
  readonly runSchedules?: boolean;
  /** Seconds between two checks of the schedules (1 to 45). @default {30} */
  readonly scheduleCheckIntervalSeconds?: number;
  /** Server only: the connection pool's size. @default {10} */
  readonly maxConnections?: number;
  /** Seconds `stop()` waits for running handlers before aborting them. @default {30} */
  readonly stopTimeoutSeconds?: number;
}

/** One schedule, as {@linkcode PgBossJobQueue.schedules} lists it. */
export interface JobSchedule {
  /** The queue it sends jobs to. */
  readonly name: string;
  /** Its key; `""` for the queue's unnamed schedule. */
  readonly key: string;
  /** The cron expression or RFC 5545 rule. */
  readonly cron: string;
  /** The time zone it is read in. */
  readonly timeZone: string;
}

/** Options of {@linkcode PgBossJobQueue.schedule}. */
export interface ScheduleOptions {
  /** Names one of several schedules of a queue. @default {undefined} */
  readonly key?: string;
  /** The IANA time zone the cron is read in. @default {"UTC"} */
  readonly timeZone?: string;
}

/** Where the jobs live. */
export type JobQueueBackend = "postgres" | "pglite";

const MAX = 2_147_483_647;
const SETTINGS = {
  retryLimit: integer(0, MAX),
  retryDelaySeconds: integer(0, MAX),
  retryBackoff: boolean(),
  retryDelayMaxSeconds: integer(1, MAX),
  expireInSeconds: integer(1, 86_400),
  retentionSeconds: integer(1, MAX),
  deleteAfterSeconds: integer(0, MAX),
  deadLetter: boolean(),
};
const CONNECT = {
  schema: matches(
    /^[A-Za-z_][A-Za-z0-9_]{0,49}$/,
    'a plain identifier (letters, digits and "_", not starting with a digit, at most 50 characters)',
  ),
  listenNotify: boolean(true),
  supervise: boolean(true),
  runSchedules: boolean(false),
  scheduleCheckIntervalSeconds: integer(1, 45),
  maxConnections: integer(1, 1000, 10),
  stopTimeoutSeconds: number(1, 30),
};
const WORK = {
  // Measured (docs/bench/): one loop of ten ran 3,000–4,100 no-op jobs/s
  // on 2 cores where one job at a time ran 280–540; more loops added none.
  concurrency: integer(1, 1000, 1),
  batchSize: integer(1, 10_000, 10),
  pollingIntervalSeconds: number(0.5, 2),
};
// pg-boss's rule for schedule keys is its rule for queue names.
const SCHEDULE_KEY = matches(
  /^[A-Za-z0-9_.\-/]+$/,
  'a name of letters, digits, "_", "-", "." and "/", such as "eu"',
);
const URL_HINT =
  "pass a URL such as postgresql://user:password@host:5432/jobs, or a PGlite instance for an embedded database";

/**
 * A durable job queue on [pg-boss](https://github.com/timgit/pg-boss), on a
 * PostgreSQL server (a URL) or an embedded PGlite database (an instance the
 * caller opens and closes).
 *
 * - Queues are created on first use with {@linkcode DEFAULT_QUEUE_SETTINGS}
 *   (retries with backoff, an expiry, a dead-letter queue `<name>__dead`).
 * - Enqueue with a key is idempotent: the id is a UUID v5 of the queue name
 *   and the key, so a second enqueue creates nothing and returns `null`.
 * - Enqueueing wakes this process's workers at once; `LISTEN`/`NOTIFY`
 *   wakes those of other processes.
 * - A failed attempt is logged under `["aftercommit", "jobs"]` with the
 *   queue, the job id and the attempt, never the data.
 *
 * @example Enqueue idempotently and work, on an embedded database
 * ```ts
 * import assert from "node:assert/strict";
 * import { PGlite } from "@electric-sql/pglite";
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 *
 * await using pglite = await PGlite.create();
 * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
 * const done = Promise.withResolvers<string>();
 * await jobs.work<{ userId: string }>("send-welcome-email", (job) => {
 *   done.resolve(job.data.userId);
 * });
 * const id = await jobs.enqueue("send-welcome-email", { userId: "u1" }, { key: "evt-1" });
 * assert.deepEqual(id, PgBossJobQueue.jobIdFor("send-welcome-email", "evt-1"));
 * assert.deepEqual(await jobs.enqueue("send-welcome-email", {}, { key: "evt-1" }), null);
 * assert.deepEqual(await done.promise, "u1");
 * ```
 */
export class PgBossJobQueue implements JobQueue, AsyncDisposable {
  readonly #boss: PgBoss;
  readonly #settings: (name: string) => Required<QueueSettings>;
  readonly #stopTimeoutMs: number;
  readonly #schema: string;
  readonly #queues = new Map<string, Promise<void>>();
  readonly #workerIds = new Map<string, string[]>();
  readonly #deadLetters: DeadLetters;
  #stopping: Promise<void> | undefined;

  /** Whether the jobs live on a PostgreSQL server or in embedded PGlite. */
  readonly backend: JobQueueBackend;

  private constructor(
    boss: PgBoss,
    backend: JobQueueBackend,
    options: PgBossJobQueueOptions,
    settings: (name: string) => Required<QueueSettings>,
  ) {
    this.#boss = boss;
    this.backend = backend;
    this.#settings = settings;
    this.#stopTimeoutMs = (options.stopTimeoutSeconds ?? 30) * 1000;
    this.#schema = options.schema ?? "pgboss";
    this.#deadLetters = new DeadLetters(
      boss,
      (action) => this.#assertRunning(action),
      (name) => this.#wake(name),
    );
  }

  /**
   * Starts pg-boss on the jobs database, installing or migrating its schema
   * when needed. The library reads no environment variable: the caller
   * says where the jobs live.
   *
   * @param database A `postgres://` URL, or a PGlite instance (the caller
   * keeps it: {@linkcode PgBossJobQueue.stop} does not close it).
   * @param options Schema, queue settings, wake-up, maintenance, schedules.
   * @returns A started queue; stop it with `await using` or `stop()`.
   * @throws {TypeError} When the database or an option is invalid (the URL
   * is never repeated: it may hold a password); nothing is opened then.
   * @throws {Error} When pg-boss cannot start; the driver's error is the
   * `cause`.
   *
   * @example Settings per queue
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, {
   *   queueDefaults: { retryLimit: 3 },
   *   queues: { "send-welcome-email": { expireInSeconds: 30 } },
   *   supervise: false,
   * });
   * assert.deepEqual(jobs.backend, "pglite");
   * ```
   */
  static async connect(
    database: string | PGliteLike,
    options: PgBossJobQueueOptions = {},
  ): Promise<PgBossJobQueue> {
    const action = "connect job queue";
    const url = typeof database === "string";
    if (url) assertPostgresUrl(database, action);
    else if (!isPglite(database)) {
      fail(
        action,
        `expected a postgres:// URL or a PGlite instance, received ${
          describe(database)
        }; ${URL_HINT}`,
      );
    }
    const o = readOptions(options, CONNECT, action);
    const settings = queueSettings(options, action);
    const boss = new PgBoss({
      schema: o.schema ?? "pgboss",
      useListenNotify: o.listenNotify,
      supervise: o.supervise,
      // The cron pass (and its timers) runs only where asked for.
      schedule: o.runSchedules,
      ...(o.scheduleCheckIntervalSeconds === undefined
        ? {}
        : { cronMonitorIntervalSeconds: o.scheduleCheckIntervalSeconds }),
      ...(url
        ? {
          connectionString: database,
          max: o.maxConnections,
          application_name: "aftercommit-jobs",
          // An unreachable server fails fast (the outbox relay backs off
          // on it) instead of hanging.
          connectionTimeoutMillis: 5000,
        }
        : { backend: "pglite" as const, db: fromPglite(database) }),
    });
    // Without an "error" listener an EventEmitter throws; log instead.
    boss.on("error", (error) => {
      logger.error("Job queue background error: {error}", {
        error: loggableError(error),
      });
    });
    boss.on("warning", (warning) => {
      logger.warn("Job queue warning: {message}", {
        message: warning.message,
        type: (warning.data as { type?: unknown } | undefined)?.type,
      });
    });
    try {
      await boss.start();
    } catch (cause) {
      await boss.stop({ graceful: false }).catch(() => {});
      throw new Error(
        `Cannot connect job queue: pg-boss did not start on the ${
          url ? "PostgreSQL" : "embedded"
        } jobs database`,
        { cause },
      );
    }
    return new PgBossJobQueue(
      boss,
      url ? "postgres" : "pglite",
      options,
      settings,
    );
  }

  /**
   * The id `enqueue(name, data, { key })` gives a job: a UUID v5 of the
   * queue name and the key, the same in every process.
   *
   * @param name The queue name.
   * @param key The idempotency key.
   * @returns The job id.
   * @throws {TypeError} When the name or the key is invalid.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * const id = PgBossJobQueue.jobIdFor("send-welcome-email", "evt-1");
   * assert.deepEqual(id, PgBossJobQueue.jobIdFor("send-welcome-email", "evt-1"));
   * assert.deepEqual(id.length, 36);
   * ```
   */
  static jobIdFor(name: string, key: string): string {
    return prepareJob({ name, data: null, options: { key } }, "derive job id")
      .id;
  }

  /**
   * The dead-letter queue of queue `name`: `name` + `"__dead"`.
   *
   * @param name The queue name.
   * @returns The dead-letter queue's name.
   * @throws {TypeError} When the name is invalid.
   */
  static deadLetterQueueName(name: string): string {
    assertQueueName(name, "name dead-letter queue");
    return name + DEAD_LETTER_SUFFIX;
  }

  /**
   * Checks a job as {@linkcode PgBossJobQueue.enqueue} does and gives it
   * its id, writing nothing (on a stopped queue too). `BatchingJobQueue`
   * calls it at each buffered enqueue; `enqueueMany` then takes the result
   * as it is.
   *
   * @param request The job.
   * @returns The job with its id.
   * @throws {TypeError} When `enqueue` would reject it (a `RangeError` for
   * numbers out of range).
   */
  prepare(request: JobRequest): PreparedJob {
    return prepareJob(request);
  }

  /**
   * A health probe for a `GET /health` endpoint: `select 1` on the jobs
   * database. A database problem is not thrown: it answers `false` and
   * logs the reason (a warning).
   *
   * @param timeoutSeconds How long to wait (a hung connection is down).
   * @returns Whether the database answered in time; `false` once stopped.
   * @throws {TypeError} When `timeoutSeconds` is not a finite number (a
   * `RangeError` below 0.01).
   */
  async ping(timeoutSeconds = 1): Promise<boolean> {
    number(0.01)(timeoutSeconds, "timeoutSeconds", "ping job queue");
    if (this.#stopping !== undefined) return false;
    const signal = AbortSignal.timeout(timeoutSeconds * 1000);
    const { promise: timedOut, reject } = Promise.withResolvers<never>();
    const onAbort = () =>
      reject(
        new Error(`No answer from the jobs database in ${timeoutSeconds} s`),
      );
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([this.#boss.getDb().executeSql("select 1"), timedOut]);
      return true;
    } catch (error) {
      if (this.#stopping === undefined) {
        logger.warn("Job queue health check failed: {error}", {
          error: loggableError(error),
        });
      }
      return false;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Counts jobs by queue and state, and the last `windowSeconds`: jobs
   * completed, creation → first start latency (p50, p99). One statement;
   * the dashboard reads it at every refresh.
   *
   * @param options `windowSeconds` (1 to 3600, default 10).
   * @returns The counts and the window.
   * @throws {TypeError} When an option is invalid (`RangeError`: out of range).
   * @throws {Error} When the queue is stopped.
   */
  stats(options: JobQueueStatsOptions = {}): Promise<JobQueueStats> {
    this.#assertRunning("read job queue stats");
    return readJobQueueStats(this.#boss.getDb(), this.#schema, options);
  }

  /**
   * Adds a job (creating its queue on first use) and wakes this process's
   * workers of the queue: `enqueueMany` of one job.
   *
   * @typeParam T The data's type.
   * @param name The queue name: letters, digits, `_`, `-`, `.` and `/`.
   * @param data Data that survives a JSON round trip.
   * @param options An idempotency key or an id, a delay, a priority.
   * @returns The job id, or `null` when its key (or id) is used in this
   * queue (until the job is deleted, see `deleteAfterSeconds`).
   * @throws {TypeError} When an argument is invalid (`RangeError`: out of
   * range); nothing is written then.
   * @throws {Error} When the queue is stopped.
   */
  async enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null> {
    const job = prepareJob(
      options === undefined ? { name, data } : { name, data, options },
    );
    this.#assertRunning(`enqueue job on queue "${name}"`);
    return (await this.#send([job]))[0]!;
  }

  /**
   * Adds many jobs with one `INSERT` per queue. Each queue's jobs are
   * inserted atomically; the queues' inserts run in parallel, and retrying
   * a call with keys creates only what is missing.
   *
   * @param jobs The jobs: queue name, data and options each.
   * @returns The ids in order; `null` where the key (or id) was used, in
   * the database or earlier in the call.
   * @throws {TypeError} When a request is invalid (its index is in the
   * message); nothing is written then.
   * @throws {Error} When the queue is stopped.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
   * const ids = await jobs.enqueueMany([
   *   { name: "send-welcome-email", data: { userId: "u1" }, options: { key: "e1" } },
   *   { name: "send-welcome-email", data: { userId: "u1" }, options: { key: "e1" } },
   * ]);
   * assert.deepEqual(ids, [PgBossJobQueue.jobIdFor("send-welcome-email", "e1"), null]);
   * ```
   */
  async enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    if (!Array.isArray(jobs)) {
      fail(
        "enqueue jobs",
        `expected an array of { name, data, options } requests, received ${
          describe(jobs)
        }`,
      );
    }
    const prepared = jobs.map((job, i) =>
      prepareJob(job, `enqueue jobs[${i}]`)
    );
    this.#assertRunning("enqueue jobs");
    return prepared.length === 0 ? [] : await this.#send(prepared);
  }

  #send(jobs: readonly PreparedJob[]): Promise<(string | null)[]> {
    if (!tracing()) return this.#insert(jobs);
    const name = jobs.every((j) => j.name === jobs[0]!.name)
      ? jobs[0]!.name
      : undefined;
    return inSpan(name === undefined ? "enqueue" : `enqueue ${name}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        "messaging.system": "pg-boss",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        ...(name === undefined ? {} : { "messaging.destination.name": name }),
        "messaging.batch.message_count": jobs.length,
      },
    }, async (span) => {
      const ids = await this.#insert(jobs);
      if (ids.length === 1) {
        if (ids[0] !== null) span.setAttribute("messaging.message.id", ids[0]!);
        span.setAttribute("aftercommit.job.duplicate", ids[0] === null);
      }
      return ids;
    });
  }

  async #insert(jobs: readonly PreparedJob[]): Promise<(string | null)[]> {
    const byQueue = new Map<
      string,
      { indices: number[]; inserts: JobInsert[]; immediate: boolean }
    >();
    const seen = new Set<string>();
    const stamp = stamped();
    for (let i = 0; i < jobs.length; i++) {
      const { name, data, id, startAfter, options } = jobs[i]!;
      // The same id twice in one INSERT is an error in pg-boss; the second
      // is a duplicate like any other.
      if (seen.has(id)) continue;
      seen.add(id);
      let batch = byQueue.get(name);
      if (batch === undefined) {
        batch = { indices: [], inserts: [], immediate: false };
        byQueue.set(name, batch);
      }
      const insert: JobInsert = { id, data: stamp(data) };
      if (options.priority !== undefined) insert.priority = options.priority;
      if (startAfter === undefined) batch.immediate = true;
      else insert.startAfter = startAfter;
      batch.indices.push(i);
      batch.inserts.push(insert);
    }
    const results: (string | null)[] = new Array(jobs.length).fill(null);
    await Promise.all(
      [...byQueue].map(async ([name, { indices, inserts, immediate }]) => {
        await this.#ensureQueue(name);
        const ids =
          await this.#boss.insert(name, inserts, { returnId: true }) ??
            [];
        const created = ids.length === indices.length
          ? undefined
          : new Set(ids);
        for (const i of indices) {
          const id = jobs[i]!.id;
          if (created === undefined || created.has(id)) results[i] = id;
        }
        if (ids.length > 0 && immediate) this.#wake(name);
      }),
    );
    return results;
  }

  /**
   * Sends a job to queue `name` on a recurring schedule (pg-boss's cron),
   * kept in the jobs database: setting it again (same name and `key`)
   * replaces it. Jobs are sent by a process connected with
   * `runSchedules: true`, then run with the queue's retries.
   *
   * @param name The queue name.
   * @param cron Five cron fields (`"0 3 * * *"`: every day at 03:00) or an
   * RFC 5545 rule (`"FREQ=WEEKLY;BYDAY=MO;BYHOUR=9"`).
   * @param data The data of every job (JSON).
   * @param options `key` (several schedules on a queue), `timeZone`.
   * @returns When the schedule is saved.
   * @throws {TypeError} When an argument is invalid, or pg-boss rejects the
   * cron or the time zone; nothing is saved then.
   * @throws {Error} When the queue is stopped.
   *
   * @example Every night at 03:30 in Paris
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
   * await jobs.schedule("purge-inbox", "30 3 * * *", null, { timeZone: "Europe/Paris" });
   * assert.deepEqual(await jobs.schedules(), [
   *   { name: "purge-inbox", key: "", cron: "30 3 * * *", timeZone: "Europe/Paris" },
   * ]);
   * await jobs.unschedule("purge-inbox");
   * assert.deepEqual(await jobs.schedules(), []);
   * ```
   */
  async schedule(
    name: string,
    cron: string,
    data: unknown = null,
    options: ScheduleOptions = {},
  ): Promise<void> {
    const { key, timeZone = "UTC" } = this.#scheduleArgs(name, options, {
      timeZone: matches(/\S/, 'an IANA time zone name such as "Europe/Paris"'),
    });
    const action = `schedule jobs on queue "${name}"`;
    prepareJob({ name, data }, "schedule jobs");
    if (typeof cron !== "string" || cron.trim() === "") {
      fail(
        action,
        `expected a cron expression, received ${
          cron === "" ? "an empty string" : describe(cron)
        }; pass five fields such as "0 3 * * *" (every day at 03:00)`,
      );
    }
    try {
      // pg-boss's own check, in process: schedule() rejects the same.
      this.#boss.previewSchedule(cron, { tz: timeZone, count: 1 });
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw new TypeError(
        /time ?zone|tz/i.test(message)
          ? `Cannot ${action}: pg-boss rejects the time zone ${
            JSON.stringify(timeZone)
          } (${message}); pass an IANA name such as "Europe/Paris", or leave it out for UTC`
          : `Cannot ${action}: pg-boss rejects the cron expression ${
            JSON.stringify(cron)
          } (${message}); pass five fields (minute hour day month weekday) such as "0 3 * * *", or an RFC 5545 rule such as "FREQ=DAILY;BYHOUR=3"`,
        { cause },
      );
    }
    this.#assertRunning(action);
    await this.#ensureQueue(name);
    await this.#boss.schedule(name, cron, data as object | null, {
      tz: timeZone,
      ...(key === undefined ? {} : { key }),
    });
    logger.info("Scheduled queue {jobName} on {cron} ({timeZone})", {
      jobName: name,
      cron,
      timeZone,
      key,
    });
  }

  /**
   * Removes the schedule of queue `name` (the one with `options.key`, or
   * the unnamed one); jobs it sent stay. A missing schedule is no error.
   *
   * @param name The queue name.
   * @param options `key`: the schedule's key.
   * @returns When it is removed.
   * @throws {TypeError} When the name or the key is invalid.
   * @throws {Error} When the queue is stopped.
   */
  async unschedule(
    name: string,
    options: { readonly key?: string } = {},
  ): Promise<void> {
    const { key } = this.#scheduleArgs(name, options, {}, "unschedule jobs");
    await this.#boss.unschedule(name, key ?? "");
    logger.info("Unscheduled queue {jobName}", { jobName: name, key });
  }

  // Checks a queue name and schedule options; unschedule also checks that
  // the queue runs (schedule does it after pg-boss's cron check).
  #scheduleArgs<S extends Record<string, Rule<string | undefined>>>(
    name: string,
    options: unknown,
    extra: S,
    verb = "schedule jobs",
  ): { key: string | undefined } & { [K in keyof S]: string | undefined } {
    assertQueueName(name, verb);
    const action = `${verb} on queue "${name}"`;
    const read = readOptions(options, { key: SCHEDULE_KEY, ...extra }, action);
    if (verb === "unschedule jobs") this.#assertRunning(action);
    return read as
      & { key: string | undefined }
      & {
        [K in keyof S]: string | undefined;
      };
  }

  /**
   * Lists the schedules, of every queue or of queue `name` (not their data).
   *
   * @param name Only this queue's.
   * @returns Queue, key (`""` for none), cron and time zone of each.
   * @throws {TypeError} When the name is invalid.
   * @throws {Error} When the queue is stopped.
   */
  async schedules(name?: string): Promise<JobSchedule[]> {
    if (name !== undefined) assertQueueName(name, "list schedules");
    this.#assertRunning("list schedules");
    return (await this.#boss.getSchedules(name)).map((s) => ({
      name: s.name,
      key: s.key ?? "",
      cron: s.cron,
      timeZone: s.timezone ?? "UTC",
    }));
  }

  /**
   * Runs `handler` for the jobs of queue `name` in this process (creating
   * the queue on first use). A handler that throws fails the attempt: the
   * error is logged (queue, id, attempt) and the job retried per the
   * queue's settings, then dead-lettered.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param handler The work: data, id, attempt and an `AbortSignal`.
   * @param options Concurrency, batch size and polling.
   * @returns The worker's id.
   * @throws {TypeError} When an argument is invalid.
   * @throws {Error} When the queue is stopped.
   */
  async work<T>(
    name: string,
    handler: JobHandler<T>,
    options: WorkOptions = {},
  ): Promise<string> {
    assertQueueName(name, "start worker");
    const action = `start worker on queue "${name}"`;
    if (typeof handler !== "function") {
      fail(
        action,
        `expected a handler function, received ${describe(handler)}`,
      );
    }
    const { concurrency, batchSize, pollingIntervalSeconds } = readOptions(
      options,
      WORK,
      action,
    );
    this.#assertRunning(action);
    await this.#ensureQueue(name);
    const workId = await this.#boss.work<T>(name, {
      batchSize,
      localConcurrency: concurrency,
      pollingIntervalSeconds,
      // Retries that waited out their delay announce nothing: the NOTIFY
      // backstop polls as often as the base interval.
      notifyPollingIntervalSeconds: pollingIntervalSeconds,
      burstWhenBatchFull: batchSize > 1,
      perJobResults: true,
    }, (jobs: PgBossJob<T>[]) => {
      // A full batch means more may wait: fetch again at once (pg-boss
      // bursts only for batches > 1).
      if (jobs.length >= batchSize) this.#wake(name);
      return Promise.all(
        jobs.map((job) => runJob(name, handler, job, () => this.#wake(name))),
      ) as Promise<JobResult[]>;
    });
    const ids = this.#boss.getWipData()
      .filter((worker) => worker.workId === workId)
      .map((worker) => worker.id);
    this.#workerIds.set(name, [...(this.#workerIds.get(name) ?? []), ...ids]);
    return workId;
  }

  /**
   * Lists dead letters (jobs whose retries were used up), oldest first,
   * without their data unless `includeData` (it may hold personal data).
   *
   * @param options `queue` (the original queue), `limit` (1 to 10,000,
   * default 100), `includeData` (default false).
   * @returns The dead letters.
   * @throws {TypeError} When an option is invalid (`RangeError`: out of range).
   * @throws {Error} When the queue is stopped.
   *
   * @example Retry what failed for good, after a fix
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, {
   *   queueDefaults: { retryLimit: 0 },
   *   supervise: false,
   * });
   * const failed = Promise.withResolvers<void>();
   * await jobs.work("send-welcome-email", () => {
   *   failed.resolve();
   *   throw new Error("mail server down");
   * });
   * await jobs.enqueue("send-welcome-email", { userId: "u1" });
   * await failed.promise;
   * let letters = await jobs.deadLetters();
   * while (letters.length === 0) letters = await jobs.deadLetters();
   * assert.deepEqual(letters[0]?.error, "Error: mail server down");
   * assert.deepEqual(await jobs.retryDeadLetters({ queue: "send-welcome-email" }), 1);
   * ```
   */
  deadLetters(options: DeadLetterListOptions = {}): Promise<DeadLetter[]> {
    return this.#deadLetters.list(options);
  }

  /**
   * Counts the dead letters `selection` names (for a confirmation prompt).
   *
   * @param selection `{ ids }`, `{ queue }` (the original queue) or `{ all: true }`.
   * @returns How many match.
   * @throws {TypeError} When the selection is invalid.
   * @throws {Error} When the queue is stopped.
   */
  countDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.count(selection);
  }

  /**
   * Moves dead letters back to their queue as new jobs (new ids, fresh
   * retries, the queue's current settings).
   *
   * @param selection `{ ids }`, `{ queue }` (the original queue) or `{ all: true }`.
   * @returns How many were moved back.
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   * @throws {Error} When the queue is stopped.
   */
  retryDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.retry(selection);
  }

  /**
   * Deletes dead letters for good.
   *
   * @param selection `{ ids }`, `{ queue }` (the original queue) or `{ all: true }`.
   * @returns How many were deleted.
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   * @throws {Error} When the queue is stopped.
   */
  deleteDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.delete(selection);
  }

  /**
   * Stops fetching, waits for running handlers (up to
   * `stopTimeoutSeconds`, then aborts their signals) and closes pg-boss's
   * connections (not a PGlite instance given to `connect`). Queued jobs
   * stay. Calling it again returns the same promise.
   *
   * @returns When pg-boss has stopped.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#boss.stop({
      graceful: true,
      timeout: this.#stopTimeoutMs,
    });
    return this.#stopping;
  }

  /**
   * {@linkcode PgBossJobQueue.stop}, for `await using`.
   *
   * @returns When pg-boss has stopped.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #assertRunning(action: string): void {
    if (this.#stopping !== undefined) {
      throw new Error(`Cannot ${action}: the job queue is stopped`);
    }
  }

  // Wakes this process's workers of a queue: they fetch now instead of
  // waiting out their polling interval.
  #wake(name: string): void {
    for (const id of this.#workerIds.get(name) ?? []) {
      this.#boss.notifyWorker(id);
    }
  }

  #ensureQueue(name: string): Promise<void> {
    let created = this.#queues.get(name);
    if (created === undefined) {
      created = this.#createQueue(name);
      this.#queues.set(name, created);
      // A failed creation is tried again on the next use.
      created.catch(() => this.#queues.delete(name));
    }
    return created;
  }

  async #createQueue(name: string): Promise<void> {
    const s = this.#settings(name);
    const deadLetter = s.deadLetter && !name.endsWith(DEAD_LETTER_SUFFIX)
      ? name + DEAD_LETTER_SUFFIX
      : undefined;
    if (deadLetter !== undefined) await this.#ensureQueue(deadLetter);
    // create_queue ignores a queue that exists: its settings stay.
    await this.#boss.createQueue(name, {
      retryLimit: s.retryLimit,
      retryDelay: s.retryDelaySeconds,
      retryBackoff: s.retryBackoff,
      // pg-boss accepts a maximum delay only with backoff.
      ...(s.retryBackoff ? { retryDelayMax: s.retryDelayMaxSeconds } : {}),
      expireInSeconds: s.expireInSeconds,
      retentionSeconds: s.retentionSeconds,
      deleteAfterSeconds: s.deleteAfterSeconds,
      notify: true,
      ...(deadLetter === undefined ? {} : { deadLetter }),
    });
  }
}

// Checks `queueDefaults` and `queues`; returns each queue's settings.
function queueSettings(
  options: PgBossJobQueueOptions,
  action: string,
): (name: string) => Required<QueueSettings> {
  const defined = (settings: unknown, what: string) =>
    Object.fromEntries(
      Object.entries(readOptions(settings, SETTINGS, action, what))
        .filter(([, value]) => value !== undefined),
    );
  const base = {
    ...DEFAULT_QUEUE_SETTINGS,
    ...defined(options.queueDefaults, "options.queueDefaults"),
  };
  assertObject(options.queues, "options.queues", action);
  const perQueue = new Map<string, Record<string, unknown>>();
  for (const [name, settings] of Object.entries(options.queues ?? {})) {
    assertQueueName(name, `${action}: options.queues`);
    perQueue.set(
      name,
      defined(settings, `options.queues[${JSON.stringify(name)}]`),
    );
  }
  return (name) =>
    ({ ...base, ...perQueue.get(name) }) as Required<QueueSettings>;
}

function isPglite(value: unknown): value is PGliteLike {
  const like = value as Partial<Record<"query" | "exec", unknown>> | null;
  return typeof like === "object" && like !== null &&
    typeof like.query === "function" && typeof like.exec === "function";
}

// Never repeats the URL in a message: it may hold a password.
function assertPostgresUrl(url: string, action: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // Named below.
  }
  const problem = url.trim() === ""
    ? "the URL is empty"
    : parsed === undefined
    ? "the URL is not a valid URL"
    : parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:"
    ? `the URL has the scheme "${parsed.protocol}", expected "postgres:" or "postgresql:"`
    : parsed.hostname === "" && !parsed.searchParams.has("host")
    ? "the URL names no host"
    : undefined;
  if (problem !== undefined) fail(action, `${problem}; ${URL_HINT}`);
}
