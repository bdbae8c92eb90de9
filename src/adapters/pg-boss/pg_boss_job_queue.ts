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
  type JobWithMetadata,
  PgBoss,
  type PGliteLike,
  type SendOptions,
} from "pg-boss";
import type {
  EnqueueOptions,
  Job,
  JobHandler,
  JobQueue,
  JobRequest,
  WorkOptions,
} from "../../application/job_queue.ts";
import { describe } from "../../internal/describe.ts";
import { assertStartAfter } from "../../application/_delay.ts";
import { jobIdFor } from "./_job_id.ts";
import {
  activeTraceparent,
  contextFromTraceparent,
  inSpan,
  meters,
  recordError,
  type Span,
  SpanKind,
  tracing,
} from "../../application/_telemetry.ts";
import {
  assertBoolean,
  assertDatabaseUrl,
  assertInteger,
  assertJobId,
  assertJsonData,
  assertKey,
  assertNumber,
  assertOptionsObject,
  assertQueueName,
} from "./_validate.ts";
import { errorType, loggableError } from "../../internal/loggable_error.ts";
import {
  type JobQueueStats,
  type JobQueueStatsOptions,
  readJobQueueStats,
} from "./job_queue_stats.ts";

const logger = getLogger(["aftercommit", "jobs"]);

// Worker defaults, measured with the side-by-side bench (docs/bench/): one
// fetch loop of ten jobs ran 3,000–4,100 no-op jobs/s on 2 cores where one
// job at a time ran 280–540, and more loops did not add more. The jobs of
// one fetch run concurrently, in no particular order.
const DEFAULT_CONCURRENCY = 1;
const DEFAULT_BATCH_SIZE = 10;

/** The environment variable {@linkcode PgBossJobQueue.connect} reads. */
export const JOB_QUEUE_DATABASE_URL = "JOB_QUEUE_DATABASE_URL";

/**
 * The suffix of a queue's dead-letter queue: jobs of `send-email` whose
 * retries are used up land in `send-email__dead`.
 */
export const DEAD_LETTER_SUFFIX = "__dead";

/**
 * How a queue retries, expires and keeps jobs. Applied when the adapter
 * creates the queue, on first use; a queue that already exists in the
 * database keeps its settings.
 */
export interface QueueSettings {
  /**
   * Retries after the first attempt; `0` means one attempt only.
   *
   * @default {5}
   */
  readonly retryLimit?: number;
  /**
   * Seconds before the first retry (an integer).
   *
   * @default {1}
   */
  readonly retryDelaySeconds?: number;
  /**
   * Doubles the delay on every retry (with jitter): about 1, 2, 4, 8, 16 s
   * with the defaults.
   *
   * @default {true}
   */
  readonly retryBackoff?: boolean;
  /**
   * Upper bound of the retry delay, in seconds, with `retryBackoff`.
   *
   * @default {300}
   */
  readonly retryDelayMaxSeconds?: number;
  /**
   * Seconds an attempt may run before it counts as failed (and is retried);
   * the handler's `signal` is aborted then.
   *
   * @default {900}
   */
  readonly expireInSeconds?: number;
  /**
   * Seconds a job may wait to start before it is deleted unstarted. Dead
   * letters wait too, so this is also how long they are kept.
   *
   * @default {1209600 (14 days)}
   */
  readonly retentionSeconds?: number;
  /**
   * Seconds a finished job is kept; an idempotency key can be used again
   * once its job is deleted. `0` keeps finished jobs forever.
   *
   * @default {604800 (7 days)}
   */
  readonly deleteAfterSeconds?: number;
  /**
   * Whether a job whose retries are used up is copied to the queue's
   * dead-letter queue (`<name>__dead`), where a worker or an operator can
   * pick it up. Dead-letter queues have none of their own.
   *
   * @default {true}
   */
  readonly deadLetter?: boolean;
}

/** The settings a queue gets when neither the connect options nor the queue's own entry say otherwise. */
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

/**
 * The part of a PGlite instance the adapter uses: a `PGlite` from
 * `@electric-sql/pglite` fits.
 */
export interface PgliteInstance {
  /**
   * Runs one statement with parameters.
   *
   * @param query The SQL text.
   * @param params The parameters.
   * @returns The rows.
   */
  query(query: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  /**
   * Runs several statements.
   *
   * @param query The SQL text.
   * @returns The results of each statement.
   */
  exec(query: string): Promise<{ rows: unknown[] }[]>;
  /**
   * Subscribes to a `NOTIFY` channel.
   *
   * @param channel The channel.
   * @param callback Called with each payload.
   * @returns A function that unsubscribes.
   */
  listen?(
    channel: string,
    callback: (payload: string) => void,
  ): Promise<() => Promise<void>>;
  /**
   * Closes the database.
   *
   * @returns When it is closed.
   */
  close(): Promise<void>;
}

/** Options of {@linkcode PgBossJobQueue.schedule}. */
export interface ScheduleOptions {
  /**
   * A name for this schedule, so that one queue can have several (each
   * with its own cron and data); `unschedule(name, { key })` removes it.
   * Letters, digits, `_`, `-`, `.` and `/`.
   *
   * @default {undefined (the queue's one unnamed schedule)}
   */
  readonly key?: string;
  /**
   * The IANA time zone the cron expression is read in, such as
   * `"Europe/Paris"`.
   *
   * @default {"UTC"}
   */
  readonly timeZone?: string;
}

/** One schedule, as {@linkcode PgBossJobQueue.schedules} lists it. */
export interface JobSchedule {
  /** The queue the schedule sends jobs to. */
  readonly name: string;
  /** The schedule's key; `""` for the queue's unnamed schedule. */
  readonly key: string;
  /** The cron expression or RFC 5545 rule. */
  readonly cron: string;
  /** The time zone it is read in. */
  readonly timeZone: string;
}

/** Options of {@linkcode PgBossJobQueue.connect}. */
export interface PgBossJobQueueOptions {
  /**
   * Embedded database only: the directory PGlite keeps its files in, so
   * jobs survive a restart. Not allowed with a URL.
   *
   * @default {undefined (in memory: jobs are lost when the process ends)}
   */
  readonly dataDir?: string;
  /**
   * Embedded database only: a PGlite instance to use instead of creating
   * one. The caller keeps ownership: {@linkcode PgBossJobQueue.stop} does not
   * close it. Not allowed with a URL or `dataDir`.
   *
   * @default {undefined (the adapter creates and closes its own)}
   */
  readonly pglite?: PgliteInstance;
  /**
   * The database schema pg-boss keeps its tables in (letters, digits and
   * `_`, not starting with a digit, at most 50 characters).
   *
   * @default {"pgboss"}
   */
  readonly schema?: string;
  /**
   * Settings for every queue this adapter creates, merged over
   * {@linkcode DEFAULT_QUEUE_SETTINGS}.
   *
   * @default {{}}
   */
  readonly queueDefaults?: QueueSettings;
  /**
   * Settings per queue name, merged over `queueDefaults`.
   *
   * @default {{}}
   */
  readonly queues?: Readonly<Record<string, QueueSettings>>;
  /**
   * Wake workers with PostgreSQL `LISTEN`/`NOTIFY` the moment a job is
   * committed, in this process and in others. Needs a session-pinned
   * connection (not PgBouncer in transaction mode); without it, workers of
   * other processes find new jobs by polling. Workers of this process are
   * woken directly either way.
   *
   * @default {true}
   */
  readonly listenNotify?: boolean;
  /**
   * Run pg-boss's maintenance in this process: expiring attempts that ran
   * too long, deleting old jobs, monitoring. Turn it off only where another
   * process does it (or in short-lived tests).
   *
   * @default {true}
   */
  readonly supervise?: boolean;
  /**
   * Run pg-boss's cron pass in this process: it sends the jobs of the
   * schedules made with {@linkcode PgBossJobQueue.schedule} when they come
   * due (checked every `scheduleCheckIntervalSeconds`; pg-boss sends one
   * job per occurrence however many processes run the pass). Turn it on in
   * at least one long-running process, such as the workers; schedules are
   * kept in the jobs database either way.
   *
   * @default {false}
   */
  readonly runSchedules?: boolean;
  /**
   * With `runSchedules`: seconds between two checks of the schedules (1 to
   * 45). A job is sent at, or up to this long after, each occurrence.
   *
   * @default {30}
   */
  readonly scheduleCheckIntervalSeconds?: number;
  /**
   * Server only: the size of the connection pool.
   *
   * @default {10}
   */
  readonly maxConnections?: number;
  /**
   * How long {@linkcode PgBossJobQueue.stop} waits for running handlers
   * before it aborts their signals and closes anyway, in seconds.
   *
   * @default {30}
   */
  readonly stopTimeoutSeconds?: number;
}

/** A job whose retries were used up, from {@linkcode PgBossJobQueue.deadLetters}. */
export interface DeadLetter {
  /** Its id in the dead-letter queue (use it to retry or delete it). */
  readonly id: string;
  /** The queue it failed on, where a retry sends it. */
  readonly queue: string;
  /** The dead-letter queue it waits in (`<queue>__dead`). */
  readonly deadLetterQueue: string;
  /** The id of the job that failed. */
  readonly originalId: string | null;
  /** The attempts the failed job made. */
  readonly attempts: number | null;
  /** The last failure, `Name: message`, when the job recorded one. */
  readonly error: string | null;
  /** When it was dead-lettered. */
  readonly deadLetteredAt: Date;
  /** Seconds since the original job was created. */
  readonly ageSeconds: number;
  /** The job's data; only with `includeData: true`. */
  readonly data?: unknown;
}

/** Options of {@linkcode PgBossJobQueue.deadLetters}. */
export interface DeadLetterListOptions {
  /**
   * Only the dead letters of this queue (the original queue's name).
   *
   * @default {undefined (every dead-letter queue)}
   */
  readonly queue?: string;
  /**
   * At most this many, oldest first (1 to 10,000).
   *
   * @default {100}
   */
  readonly limit?: number;
  /**
   * Include each job's data. It may hold personal data: leave it off for
   * logs and dashboards.
   *
   * @default {false}
   */
  readonly includeData?: boolean;
}

/**
 * Which dead letters a retry or a delete is about: some ids, those of one
 * queue (the original queue's name), or all of them.
 */
export type DeadLetterSelection =
  | { readonly ids: readonly string[] }
  | { readonly queue: string }
  | { readonly all: true };

/** Where the jobs live: a PostgreSQL server, or an embedded PGlite database. */
export type JobQueueBackend = "postgres" | "pglite";

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,49}$/;

/**
 * A durable job queue on [pg-boss](https://github.com/timgit/pg-boss), in
 * the jobs database: a PostgreSQL server, or an embedded PGlite database
 * when no URL is given.
 *
 * - Queues are created on first use with {@linkcode DEFAULT_QUEUE_SETTINGS}
 *   (retries with exponential backoff, an expiry, a dead-letter queue
 *   `<name>__dead`), overridable per adapter and per queue.
 * - Enqueue is idempotent with a key: the job id is derived from the queue
 *   name and the key (a UUID v5), so the second enqueue creates nothing and
 *   returns `null`.
 * - Workers start jobs within milliseconds: enqueueing wakes this process's
 *   workers directly, and `LISTEN`/`NOTIFY` wakes those of other processes.
 * - A failed attempt is logged under `["aftercommit", "jobs"]` with the
 *   queue name, the job id and the attempt, never the data.
 *
 * @example Enqueue and work, on the embedded database
 * ```ts ignore
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 *
 * await using jobs = await PgBossJobQueue.connect();
 * await jobs.work<{ userId: string }>("send-welcome-email", async (job) => {
 *   console.log("welcome", job.data.userId, "attempt", job.attempt);
 * });
 * await jobs.enqueue("send-welcome-email", { userId: "u1" }, { key: "evt-1" });
 * await jobs.enqueue("send-welcome-email", { userId: "u1" }, { key: "evt-1" }); // null
 * ```
 */
export class PgBossJobQueue implements JobQueue, AsyncDisposable {
  readonly #boss: PgBoss;
  readonly #backend: JobQueueBackend;
  readonly #ownedPglite: PgliteInstance | undefined;
  readonly #defaults: Required<QueueSettings>;
  readonly #perQueue: Readonly<Record<string, QueueSettings>>;
  readonly #stopTimeoutMs: number;
  readonly #schema: string;
  readonly #queues = new Map<string, Promise<void>>();
  readonly #workerIds = new Map<string, string[]>();
  #stopping: Promise<void> | undefined;

  private constructor(
    boss: PgBoss,
    backend: JobQueueBackend,
    ownedPglite: PgliteInstance | undefined,
    options: PgBossJobQueueOptions,
  ) {
    this.#boss = boss;
    this.#backend = backend;
    this.#ownedPglite = ownedPglite;
    this.#defaults = { ...DEFAULT_QUEUE_SETTINGS, ...options.queueDefaults };
    this.#perQueue = options.queues ?? {};
    this.#stopTimeoutMs = (options.stopTimeoutSeconds ?? 30) * 1000;
    this.#schema = options.schema ?? "pgboss";
  }

  /**
   * Connects to the jobs database and starts pg-boss (installing or
   * migrating its schema when needed).
   *
   * The database is `url` if given, else the `JOB_QUEUE_DATABASE_URL`
   * environment variable if set, else an embedded PGlite database (in
   * memory, or in `options.dataDir`).
   *
   * @param url A `postgres://` or `postgresql://` URL.
   * @param options Embedded storage, schema, queue settings, wake-up and
   * maintenance.
   * @returns A started queue; stop it with `await using` or
   * {@linkcode PgBossJobQueue.stop}.
   * @throws {TypeError} When the URL (given or from the environment) is
   * empty, not a URL or not PostgreSQL's, or an option is invalid; nothing is
   * opened then.
   * @throws {Error} When pg-boss cannot start, for example because the
   * server is unreachable; the driver's error is the `cause`.
   *
   * @example Connect from the environment
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect(
   *   Deno.env.get("JOB_QUEUE_DATABASE_URL"),
   *   { queueDefaults: { retryLimit: 3 } },
   * );
   * console.log(jobs.backend); // "postgres" when the variable is set
   * ```
   */
  static async connect(
    url?: string,
    options: PgBossJobQueueOptions = {},
  ): Promise<PgBossJobQueue> {
    const action = "connect job queue";
    assertOptionsObject(options, "options", action);
    let target: string | undefined;
    if (url !== undefined) {
      assertDatabaseUrl(url, "the URL", action);
      target = url;
    } else {
      const fromEnv = Deno.env.get(JOB_QUEUE_DATABASE_URL);
      if (fromEnv !== undefined) {
        assertDatabaseUrl(fromEnv, JOB_QUEUE_DATABASE_URL, action);
        target = fromEnv;
      }
    }
    assertConnectOptions(options, target !== undefined, action);

    const common = {
      schema: options.schema ?? "pgboss",
      useListenNotify: options.listenNotify ?? true,
      supervise: options.supervise ?? true,
      // The cron pass (and its timers) runs only where asked for.
      schedule: options.runSchedules ?? false,
      ...(options.scheduleCheckIntervalSeconds === undefined ? {} : {
        cronMonitorIntervalSeconds: options.scheduleCheckIntervalSeconds,
      }),
    };
    let boss: PgBoss;
    let ownedPglite: PgliteInstance | undefined;
    if (target !== undefined) {
      boss = new PgBoss({
        ...common,
        connectionString: target,
        max: options.maxConnections ?? 10,
        application_name: "aftercommit-jobs",
        // An unreachable server then fails fast with an error that says
        // so (the outbox relay backs off on it) instead of hanging.
        connectionTimeoutMillis: 5000,
      });
    } else {
      let pglite = options.pglite;
      if (pglite === undefined) {
        // Loaded only for the embedded database: a server setup never pays
        // for the WASM module.
        const { PGlite } = await import("@electric-sql/pglite");
        ownedPglite = await PGlite.create(options.dataDir);
        pglite = ownedPglite;
      }
      boss = new PgBoss({
        ...common,
        backend: "pglite",
        db: fromPglite(pglite as PGliteLike),
      });
    }
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
      await ownedPglite?.close().catch(() => {});
      throw new Error(
        `Cannot connect job queue: pg-boss did not start on the ${
          target === undefined ? "embedded" : "PostgreSQL"
        } jobs database`,
        { cause },
      );
    }
    return new PgBossJobQueue(
      boss,
      target === undefined ? "pglite" : "postgres",
      ownedPglite,
      options,
    );
  }

  /**
   * The job id that `enqueue(name, data, { key })` gives a job: a UUID v5 of
   * the queue name and the key, the same in every process.
   *
   * @param name The queue name.
   * @param key The idempotency key.
   * @returns The job id.
   * @throws {TypeError} When the name or the key is invalid.
   *
   * @example Derive an id
   * ```ts
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * const id = PgBossJobQueue.jobIdFor("send-welcome-email", "evt-1");
   * console.log(id === PgBossJobQueue.jobIdFor("send-welcome-email", "evt-1")); // true
   * ```
   */
  static jobIdFor(name: string, key: string): string {
    assertQueueName(name, "derive job id");
    assertKey(key, "derive job id");
    if (key === undefined) {
      throw new TypeError(
        "Cannot derive job id: expected a key, received undefined",
      );
    }
    return jobIdFor(name, key);
  }

  /**
   * The name of the dead-letter queue of queue `name`.
   *
   * @param name The queue name.
   * @returns `name` followed by {@linkcode DEAD_LETTER_SUFFIX}.
   * @throws {TypeError} When the name is invalid.
   *
   * @example The dead letters of a queue
   * ```ts
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * console.log(PgBossJobQueue.deadLetterQueueName("send-welcome-email"));
   * // "send-welcome-email__dead"
   * ```
   */
  static deadLetterQueueName(name: string): string {
    assertQueueName(name, "name dead-letter queue");
    return name + DEAD_LETTER_SUFFIX;
  }

  /** Whether the jobs live on a PostgreSQL server or in embedded PGlite. */
  get backend(): JobQueueBackend {
    return this.#backend;
  }

  /**
   * The job id that `enqueue(name, data, { key })` gives a job: the same as
   * the static {@linkcode PgBossJobQueue.jobIdFor}, here for the
   * `JobQueue` port (a `BatchingJobQueue` uses it to answer a buffered
   * enqueue at once).
   *
   * @param name The queue name.
   * @param key The idempotency key.
   * @returns The job id.
   * @throws {TypeError} When the name or the key is invalid.
   *
   * @example Derive an id through the port
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * const id = jobs.jobIdFor("send-welcome-email", "evt-1");
   * console.log(id === await jobs.enqueue("send-welcome-email", {}, { key: "evt-1" })); // true
   * ```
   */
  jobIdFor(name: string, key: string): string {
    return PgBossJobQueue.jobIdFor(name, key);
  }

  /**
   * Checks a job exactly as {@linkcode PgBossJobQueue.enqueue} does, and
   * writes nothing: the queue name, the data (it must survive a JSON round
   * trip) and the options. Works on a stopped queue too.
   *
   * @param name The queue name.
   * @param data The data.
   * @param options An idempotency key or an id, a delay, a priority.
   * @throws {TypeError} When `enqueue` would reject these arguments (a
   * `RangeError` for numbers out of range).
   *
   * @example Reject bad data before buffering it
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * jobs.validate("send-welcome-email", { at: new Date() }); // throws TypeError
   * ```
   */
  validate(name: string, data: unknown, options?: EnqueueOptions): void {
    assertJob(name, data, options);
  }

  /**
   * Checks a job exactly as {@linkcode PgBossJobQueue.enqueue} does and
   * gives it its id, writing nothing: a `BatchingJobQueue` calls it when a
   * handler enqueues, and hands the result to
   * {@linkcode PgBossJobQueue.enqueueMany}, which then neither checks it
   * nor hashes its key again.
   *
   * @param request The job: queue name, data, options.
   * @returns The request, with the job's id: derived from the key, the
   * given id, or a fresh UUID.
   * @throws {TypeError} When `enqueue` would reject the request (a
   * `RangeError` for numbers out of range).
   *
   * @example Prepare, then write
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * const job = jobs.prepare({ name: "send-welcome-email", data: {}, options: { key: "evt-1" } });
   * console.log(job.id === PgBossJobQueue.jobIdFor("send-welcome-email", "evt-1")); // true
   * console.log((await jobs.enqueueMany([job]))[0] === job.id); // true
   * ```
   */
  prepare(request: JobRequest): JobRequest & { readonly id: string } {
    if (
      typeof request !== "object" || request === null || Array.isArray(request)
    ) {
      throw new TypeError(
        `Cannot enqueue job: expected a { name, data, options } request, received ${
          describe(request)
        }`,
      );
    }
    const { name, data, options } = request;
    assertJob(name, data, options);
    return PreparedJob.of(name, data, options);
  }

  /**
   * A cheap health probe, for a `GET /health` endpoint: runs `select 1` on
   * the jobs database. It never throws for a database problem: it answers
   * `false` and logs the reason under `["aftercommit", "jobs"]` as a
   * warning.
   *
   * @param timeoutSeconds How long to wait for the answer before giving up
   * (a hung connection counts as down).
   * @returns `true` when the database answered in time; `false` when it did
   * not, failed, or the queue is stopped (or stopping).
   * @throws {TypeError} When `timeoutSeconds` is not a finite number
   * (a `RangeError` when it is below 0.01).
   *
   * @example A health endpoint
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * Deno.serve(async () => {
   *   const ok = await jobs.ping();
   *   return Response.json({ jobs: ok ? "up" : "down" }, { status: ok ? 200 : 503 });
   * });
   * ```
   */
  async ping(timeoutSeconds = 1): Promise<boolean> {
    assertNumber(timeoutSeconds, "timeoutSeconds", "ping job queue", 0.01);
    if (this.#stopping !== undefined) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `No answer from the jobs database in ${timeoutSeconds} s`,
            ),
          ),
        timeoutSeconds * 1000,
      );
    });
    try {
      await Promise.race([this.#boss.getDb().executeSql("select 1"), timeout]);
      return true;
    } catch (error) {
      if (this.#stopping !== undefined) return false;
      logger.warn("Job queue health check failed: {error}", {
        error: loggableError(error),
      });
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Counts jobs by queue and state (waiting, retrying, running, failed,
   * dead-lettered) and reports the last `windowSeconds`: jobs completed,
   * and the time from a job's creation to the start of its first attempt
   * (p50, p99). One statement over pg-boss's job table; the dashboard
   * (`@aftercommit/core/dashboard`) reads it at every refresh.
   *
   * @param options `windowSeconds` (1 to 3600, default 10).
   * @returns The counts and the window.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When `windowSeconds` is out of range.
   * @throws {Error} When the queue is stopped.
   *
   * @example Jobs completed per second
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * const { queues, window } = await jobs.stats({ windowSeconds: 10 });
   * console.log(queues, window.completed / window.seconds);
   * ```
   */
  stats(options: JobQueueStatsOptions = {}): Promise<JobQueueStats> {
    this.#assertRunning("read job queue stats");
    return readJobQueueStats(this.#boss.getDb(), this.#schema, options);
  }

  /**
   * Adds a job, creating the queue (and its dead-letter queue) on first use,
   * and wakes this process's workers of the queue.
   *
   * @typeParam T The data's type.
   * @param name The queue name: letters, digits, `_`, `-`, `.` and `/`.
   * @param data Data that survives a JSON round trip: plain objects,
   * arrays, strings, finite numbers, booleans, `null`.
   * @param options An idempotency key or an explicit id, a delay, a
   * priority.
   * @returns The job id, or `null` when a job with this key (or id) already
   * exists in this queue (until it is deleted, see
   * {@linkcode QueueSettings.deleteAfterSeconds}).
   * @throws {TypeError} When the name, the data or an option is invalid
   * (a `RangeError` for numbers out of range); nothing is written then.
   * @throws {Error} When the queue is stopped.
   *
   * @example Idempotent enqueue
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * const first = await jobs.enqueue("send-welcome-email", { userId: "u1" }, {
   *   key: "evt-1",
   * });
   * const second = await jobs.enqueue("send-welcome-email", { userId: "u1" }, {
   *   key: "evt-1",
   * });
   * console.log(typeof first, second); // "string" null
   * ```
   */
  async enqueue<T>(
    name: string,
    data: T,
    options: EnqueueOptions = {},
  ): Promise<string | null> {
    const action = assertJob(name, data, options);
    this.#assertRunning(action);
    await this.#ensureQueue(name);
    const send: SendOptions = {};
    if (options.key !== undefined) send.id = jobIdFor(name, options.key);
    else if (options.id !== undefined) send.id = options.id;
    if (options.priority !== undefined) send.priority = options.priority;
    const startAfter = startAfterOf(options);
    const delayed = startAfter !== undefined;
    if (delayed) send.startAfter = startAfter;
    if (!tracing()) {
      const id = await this.#boss.send(name, withTraceparent(data), send);
      if (id !== null && !delayed) this.#wake(name);
      return id;
    }
    return await inSpan(`enqueue ${name}`, {
      kind: SpanKind.PRODUCER,
      attributes: sendAttributes(name, 1),
    }, async (span) => {
      const id = await this.#boss.send(name, withTraceparent(data), send);
      if (id !== null) span.setAttribute("messaging.message.id", id);
      span.setAttribute("aftercommit.job.duplicate", id === null);
      if (id !== null && !delayed) this.#wake(name);
      return id;
    });
  }

  /**
   * Adds many jobs with one `INSERT` per queue: the jobs one `publishAll`
   * makes go to the database in one round trip. Each queue's jobs are
   * inserted atomically; with several queues the inserts run in parallel and
   * one may fail while another succeeds, and retrying the same call with
   * keys creates only what is missing.
   *
   * @param jobs The jobs: queue name, data and options each.
   * @returns The ids in the order of `jobs`; `null` where the key (or the
   * explicit id) was already used, in the database or earlier in the same
   * call.
   * @throws {TypeError} When any request is invalid (its index is in the
   * message); nothing is written then.
   * @throws {Error} When the queue is stopped.
   *
   * @example Enqueue a batch
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * const ids = await jobs.enqueueMany([
   *   { name: "send-welcome-email", data: { userId: "u1" }, options: { key: "e1" } },
   *   { name: "send-welcome-email", data: { userId: "u2" }, options: { key: "e2" } },
   * ]);
   * console.log(ids.length); // 2
   * ```
   */
  async enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    if (!Array.isArray(jobs)) {
      throw new TypeError(
        `Cannot enqueue jobs: expected an array of { name, data, options } requests, received ${
          describe(jobs)
        }`,
      );
    }
    for (let i = 0; i < jobs.length; i++) {
      const request: unknown = jobs[i];
      if (
        typeof request !== "object" || request === null ||
        Array.isArray(request)
      ) {
        throw new TypeError(
          `Cannot enqueue jobs: jobs[${i}] must be a { name, data, options } object, received ${
            describe(request)
          }`,
        );
      }
      // Checked (and given its id) by prepare().
      if (request instanceof PreparedJob) continue;
      const { name, data, options } = request as JobRequest;
      assertJob(name, data, options, `enqueue jobs[${i}]`);
    }
    this.#assertRunning("enqueue jobs");
    if (jobs.length === 0) return [];
    if (!tracing()) return await this.#enqueueMany(jobs);
    return await inSpan("enqueue", {
      kind: SpanKind.PRODUCER,
      attributes: sendAttributes(undefined, jobs.length),
    }, () => this.#enqueueMany(jobs));
  }

  async #enqueueMany(
    jobs: readonly JobRequest[],
  ): Promise<(string | null)[]> {
    interface Batch {
      readonly indices: number[];
      readonly inserts: JobInsert[];
      immediate: boolean;
    }
    const batches = new Map<string, Batch>();
    const ids: string[] = new Array(jobs.length);
    const duplicate: boolean[] = new Array(jobs.length).fill(false);
    const keyed = new Set<string>();
    for (let i = 0; i < jobs.length; i++) {
      const { name, data, options = {} } = jobs[i]!;
      let id: string;
      if (options.key === undefined && options.id === undefined) {
        id = crypto.randomUUID();
      } else {
        id = options.key === undefined
          ? options.id!
          : jobIdFor(name, options.key);
        // The same id twice in one INSERT is an error in pg-boss; the second
        // one is a duplicate like any other.
        if (keyed.has(id)) {
          ids[i] = id;
          duplicate[i] = true;
          continue;
        }
        keyed.add(id);
      }
      ids[i] = id;
      let batch = batches.get(name);
      if (batch === undefined) {
        batch = { indices: [], inserts: [], immediate: false };
        batches.set(name, batch);
      }
      const insert: JobInsert = { id, data: withTraceparent(data) as object };
      if (options.priority !== undefined) insert.priority = options.priority;
      const startAfter = startAfterOf(options);
      if (startAfter !== undefined) {
        insert.startAfter = startAfter instanceof Date
          ? startAfter.toISOString()
          : startAfter;
      } else {
        batch.immediate = true;
      }
      batch.indices.push(i);
      batch.inserts.push(insert);
    }

    const results: (string | null)[] = new Array(jobs.length).fill(null);
    await Promise.all(
      [...batches].map(async ([name, batch]) => {
        await this.#ensureQueue(name);
        const returned =
          await this.#boss.insert(name, batch.inserts, { returnId: true }) ??
            [];
        if (returned.length === batch.indices.length) {
          // Every job was new (the usual case): no lookup needed.
          for (const i of batch.indices) results[i] = ids[i]!;
        } else {
          const inserted = new Set(returned);
          for (const i of batch.indices) {
            if (inserted.has(ids[i]!)) results[i] = ids[i]!;
          }
        }
        if (returned.length > 0 && batch.immediate) this.#wake(name);
      }),
    );
    return results;
  }

  /**
   * Sends a job to queue `name` on a recurring schedule: pg-boss's cron
   * (`schedule()`), creating the queue on first use. The schedule lives in
   * the jobs database: setting it again (same name and `key`) replaces it,
   * so calling this at every start is safe. Jobs are sent only by a process
   * connected with `runSchedules: true` (at or up to
   * `scheduleCheckIntervalSeconds` after each occurrence, one job however
   * many such processes run), then run by the queue's workers with the
   * queue's retries.
   *
   * @param name The queue name.
   * @param cron A cron expression of five fields (minute, hour, day of the
   * month, month, day of the week), such as `"0 3 * * *"` (every day at
   * 03:00), or an RFC 5545 rule such as `"FREQ=WEEKLY;BYDAY=MO;BYHOUR=9"`.
   * @param data The data of every job (JSON, as for `enqueue`).
   * @param options `key` (several schedules on one queue), `timeZone`.
   * @returns When the schedule is saved.
   * @throws {TypeError} When the name, the data or an option is invalid, or
   * pg-boss rejects the cron expression or the time zone; nothing is saved
   * then.
   * @throws {Error} When the queue is stopped.
   *
   * @example Purge old inbox records every night
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect(undefined, {
   *   runSchedules: true,
   * });
   * await jobs.schedule("purge-inbox", "30 3 * * *", null, {
   *   timeZone: "Europe/Paris",
   * });
   * await jobs.work("purge-inbox", async () => {
   *   // await inbox.purge(sql, { olderThanSeconds: 30 * 86_400 });
   * });
   * ```
   */
  async schedule(
    name: string,
    cron: string,
    data: unknown = null,
    options: ScheduleOptions = {},
  ): Promise<void> {
    assertQueueName(name, "schedule jobs");
    const action = `schedule jobs on queue "${name}"`;
    assertJsonData(data, action);
    assertOptionsObject(options, "options", action);
    const { key, timeZone } = options;
    assertScheduleKey(key, action);
    if (
      timeZone !== undefined &&
      (typeof timeZone !== "string" || timeZone === "")
    ) {
      throw new TypeError(
        `Cannot ${action}: options.timeZone must be an IANA time zone name such as "Europe/Paris", received ${
          timeZone === "" ? "an empty string" : describe(timeZone)
        }`,
      );
    }
    if (typeof cron !== "string" || cron.trim() === "") {
      throw new TypeError(
        `Cannot ${action}: expected a cron expression, received ${
          cron === "" ? "an empty string" : describe(cron)
        }; pass five fields such as "0 3 * * *" (every day at 03:00)`,
      );
    }
    try {
      // pg-boss's own check, in process: schedule() rejects the same.
      this.#boss.previewSchedule(cron, { tz: timeZone ?? "UTC", count: 1 });
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
      tz: timeZone ?? "UTC",
      ...(key === undefined ? {} : { key }),
    });
    logger.info("Scheduled queue {jobName} on {cron} ({timeZone})", {
      jobName: name,
      cron,
      timeZone: timeZone ?? "UTC",
      key,
    });
  }

  /**
   * Removes the schedule of queue `name` (the one with `options.key`, or the
   * one without a key). Jobs it already sent stay. Removing a schedule
   * that does not exist does nothing.
   *
   * @param name The queue name.
   * @param options `key`: the schedule's key, as given to `schedule`.
   * @returns When the schedule is removed.
   * @throws {TypeError} When the name or the key is invalid.
   * @throws {Error} When the queue is stopped.
   *
   * @example Stop a nightly job
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * await jobs.unschedule("purge-inbox");
   * ```
   */
  async unschedule(
    name: string,
    options: { readonly key?: string } = {},
  ): Promise<void> {
    assertQueueName(name, "unschedule jobs");
    const action = `unschedule jobs on queue "${name}"`;
    assertOptionsObject(options, "options", action);
    assertScheduleKey(options.key, action);
    this.#assertRunning(action);
    await this.#boss.unschedule(name, options.key ?? "");
    logger.info("Unscheduled queue {jobName}", {
      jobName: name,
      key: options.key,
    });
  }

  /**
   * Lists the schedules, of every queue or of queue `name`.
   *
   * @param name A queue name, to list only its schedules.
   * @returns Each schedule's queue, key (`""` for none), cron expression and
   * time zone; not its data.
   * @throws {TypeError} When the name is invalid.
   * @throws {Error} When the queue is stopped.
   */
  async schedules(name?: string): Promise<JobSchedule[]> {
    if (name !== undefined) assertQueueName(name, "list schedules");
    this.#assertRunning("list schedules");
    const rows = await this.#boss.getSchedules(name);
    return rows.map((s) => ({
      name: s.name,
      key: s.key ?? "",
      cron: s.cron,
      timeZone: s.timezone ?? "UTC",
    }));
  }

  /**
   * Starts running `handler` for jobs of queue `name` in this process,
   * creating the queue on first use. A job whose handler throws (or
   * rejects) fails that attempt: the error is logged with the queue name,
   * job id and attempt, and the job is retried per the queue's settings,
   * then dead-lettered.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param handler The work; it receives the data, the id, the attempt
   * number and an `AbortSignal`.
   * @param options Concurrency, batch size and polling.
   * @returns The worker's id.
   * @throws {TypeError} When the name, the handler or an option is invalid.
   * @throws {Error} When the queue is stopped.
   *
   * @example A worker with a batch size, for throughput
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * await jobs.work<{ userId: string }>("send-welcome-email", async (job) => {
   *   await fetch("https://mail.example/send", {
   *     method: "POST",
   *     body: JSON.stringify(job.data),
   *     signal: job.signal,
   *   });
   * }, { concurrency: 2, batchSize: 20 });
   * ```
   */
  async work<T>(
    name: string,
    handler: JobHandler<T>,
    options: WorkOptions = {},
  ): Promise<string> {
    assertQueueName(name, "start worker");
    const action = `start worker on queue "${name}"`;
    if (typeof handler !== "function") {
      throw new TypeError(
        `Cannot ${action}: expected a handler function, received ${
          describe(handler)
        }`,
      );
    }
    assertOptionsObject(options, "options", action);
    assertInteger(options.concurrency, "options.concurrency", action, 1, 1000);
    assertInteger(options.batchSize, "options.batchSize", action, 1, 10_000);
    assertNumber(
      options.pollingIntervalSeconds,
      "options.pollingIntervalSeconds",
      action,
      0.5,
    );
    this.#assertRunning(action);
    await this.#ensureQueue(name);
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    const polling = options.pollingIntervalSeconds ?? 2;
    const workId = await this.#boss.work<T>(
      name,
      {
        batchSize,
        localConcurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
        pollingIntervalSeconds: polling,
        // Retries that waited out their delay announce nothing, so the
        // NOTIFY backstop polls as often as the base interval.
        notifyPollingIntervalSeconds: polling,
        burstWhenBatchFull: batchSize > 1,
        perJobResults: true,
      },
      (jobs) => this.#runBatch(name, batchSize, handler, jobs),
    );
    const ids = this.#boss.getWipData()
      .filter((worker) => worker.workId === workId)
      .map((worker) => worker.id);
    this.#workerIds.set(name, [...(this.#workerIds.get(name) ?? []), ...ids]);
    return workId;
  }

  /**
   * Lists dead letters: jobs whose retries were used up, waiting in the
   * dead-letter queues (`<name>__dead`), oldest first. Without
   * `includeData` the jobs' data is left out (it may hold personal data).
   *
   * @param options `queue`: only the dead letters of this (original) queue;
   * `limit` (1 to 10,000, default 100); `includeData` (default false).
   * @returns The dead letters.
   * @throws {TypeError} When an option is invalid.
   * @throws {RangeError} When `limit` is out of range.
   * @throws {Error} When the queue is stopped.
   *
   * @example See what failed for good
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * for (const letter of await jobs.deadLetters({ limit: 20 })) {
   *   console.log(letter.queue, letter.id, letter.attempts, letter.error);
   * }
   * ```
   */
  async deadLetters(
    options: DeadLetterListOptions = {},
  ): Promise<DeadLetter[]> {
    const action = "list dead letters";
    assertOptionsObject(options, "options", action);
    const { queue, limit = 100, includeData = false } = options;
    if (queue !== undefined) assertQueueName(queue, action);
    assertInteger(limit, "options.limit", action, 1, 10_000);
    assertBoolean(includeData, "options.includeData", action);
    this.#assertRunning(action);
    const letters: DeadLetter[] = [];
    for (const dlq of await this.#deadLetterQueues(queue)) {
      const jobs = await this.#boss.findJobs<unknown>(dlq, {
        queued: true,
        limit,
      });
      for (const job of jobs) letters.push(deadLetterOf(dlq, job, includeData));
    }
    return letters
      .sort((a, b) => a.deadLetteredAt.getTime() - b.deadLetteredAt.getTime())
      .slice(0, limit);
  }

  /**
   * Counts the dead letters a retry or delete of `selection` would change
   * (for a confirmation prompt).
   *
   * @param selection `{ ids }`, `{ queue }` (the original queue's name) or
   * `{ all: true }`.
   * @returns How many dead letters match.
   * @throws {TypeError} When the selection is invalid.
   * @throws {Error} When the queue is stopped.
   */
  async countDeadLetters(selection: DeadLetterSelection): Promise<number> {
    let count = 0;
    const found = await this.#selectDeadLetters(
      selection,
      "count dead letters",
    );
    for (const ids of found.values()) count += ids.length;
    return count;
  }

  /**
   * Retries dead letters: each is moved back to its original queue as a new
   * job (a new id, a fresh set of retries, the queue's current settings),
   * and leaves the dead-letter queue.
   *
   * @param selection `{ ids }`, `{ queue }` (the original queue's name) or
   * `{ all: true }`.
   * @returns How many jobs were moved back.
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   * @throws {Error} When the queue is stopped.
   *
   * @example Retry a queue's dead letters after a fix
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using jobs = await PgBossJobQueue.connect();
   * const moved = await jobs.retryDeadLetters({ queue: "send-welcome-email" });
   * console.log(`${moved} jobs retried`);
   * ```
   */
  async retryDeadLetters(selection: DeadLetterSelection): Promise<number> {
    const action = "retry dead letters";
    const found = await this.#selectDeadLetters(selection, action);
    let moved = 0;
    for (const [dlq, ids] of found) {
      for (let i = 0; i < ids.length; i += 1000) {
        const chunk = ids.slice(i, i + 1000);
        moved += await this.#boss.redrive(dlq, {
          ids: chunk,
          limit: chunk.length,
        });
      }
      this.#wake(dlq.slice(0, -DEAD_LETTER_SUFFIX.length));
    }
    logger.info("Retried {count} dead letters", { count: moved });
    return moved;
  }

  /**
   * Deletes dead letters for good.
   *
   * @param selection `{ ids }`, `{ queue }` (the original queue's name) or
   * `{ all: true }`.
   * @returns How many were deleted.
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   * @throws {Error} When the queue is stopped.
   */
  async deleteDeadLetters(selection: DeadLetterSelection): Promise<number> {
    const action = "delete dead letters";
    const found = await this.#selectDeadLetters(selection, action);
    let deleted = 0;
    for (const [dlq, ids] of found) {
      for (let i = 0; i < ids.length; i += 1000) {
        const response = await this.#boss.deleteJob(
          dlq,
          ids.slice(i, i + 1000),
        ) as { affected?: number };
        deleted += response.affected ?? 0;
      }
    }
    logger.info("Deleted {count} dead letters", { count: deleted });
    return deleted;
  }

  // The dead-letter queues in the database, or the one of `queue`.
  async #deadLetterQueues(queue?: string): Promise<string[]> {
    if (queue !== undefined) {
      const name = queue.endsWith(DEAD_LETTER_SUFFIX)
        ? queue
        : queue + DEAD_LETTER_SUFFIX;
      return (await this.#boss.getQueue(name)) === null ? [] : [name];
    }
    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#boss.getQueues(undefined, {
        limit: 1000,
        ...(after === undefined ? {} : { after }),
      });
      for (const q of page) {
        if (q.name.endsWith(DEAD_LETTER_SUFFIX)) names.push(q.name);
      }
      if (page.length < 1000) return names;
      after = page[page.length - 1]!.name;
    }
  }

  // The ids a selection names, by dead-letter queue, read before changing
  // anything so that a bad selection changes nothing.
  async #selectDeadLetters(
    selection: DeadLetterSelection,
    action: string,
  ): Promise<Map<string, string[]>> {
    const { queue, ids } = assertDeadLetterSelection(selection, action);
    this.#assertRunning(action);
    const wanted = ids === undefined ? undefined : new Set(ids);
    const found = new Map<string, string[]>();
    for (const dlq of await this.#deadLetterQueues(queue)) {
      const matched: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await this.#boss.findJobs<unknown>(dlq, {
          queued: true,
          limit: 10_000,
          ...(after === undefined ? {} : { after }),
        });
        for (const job of page) {
          if (wanted === undefined || wanted.has(job.id)) matched.push(job.id);
        }
        if (page.length < 10_000) break;
        after = page[page.length - 1]!.id;
      }
      if (matched.length > 0) found.set(dlq, matched);
    }
    return found;
  }

  /**
   * Stops fetching jobs, waits for running handlers to finish (up to
   * `stopTimeoutSeconds`, then aborts their signals), and closes the
   * connection, and the embedded database if the adapter opened it. Jobs
   * still queued stay in the database. Calling it again returns the same
   * promise.
   *
   * @returns When everything is closed.
   *
   * @example Stop explicitly
   * ```ts ignore
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * const jobs = await PgBossJobQueue.connect();
   * try {
   *   await jobs.enqueue("send-welcome-email", { userId: "u1" });
   * } finally {
   *   await jobs.stop();
   * }
   * ```
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /**
   * Same as {@linkcode PgBossJobQueue.stop}, for `await using`.
   *
   * @returns When everything is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #stop(): Promise<void> {
    try {
      await this.#boss.stop({ graceful: true, timeout: this.#stopTimeoutMs });
    } finally {
      await this.#ownedPglite?.close();
    }
  }

  #assertRunning(action: string): void {
    if (this.#stopping !== undefined) {
      throw new Error(`Cannot ${action}: the job queue is stopped`);
    }
  }

  // Wakes this process's workers of a queue: they fetch now instead of
  // waiting out their polling interval.
  #wake(name: string): void {
    const ids = this.#workerIds.get(name);
    if (ids === undefined) return;
    for (const id of ids) this.#boss.notifyWorker(id);
  }

  async #runBatch<T>(
    name: string,
    batchSize: number,
    handler: JobHandler<T>,
    jobs: PgBossJob<T>[],
  ): Promise<JobResult[]> {
    // A full batch means more jobs may be waiting: fetch again right after
    // this one instead of sleeping (pg-boss bursts only for batches > 1).
    if (jobs.length >= batchSize) this.#wake(name);
    return await Promise.all(
      jobs.map((job) => this.#runJob(name, handler, job)),
    );
  }

  #runJob<T>(
    name: string,
    handler: JobHandler<T>,
    job: PgBossJob<T>,
  ): Promise<JobResult> {
    const instruments = meters();
    if (instruments === undefined) return this.#tracedJob(name, handler, job);
    const started = performance.now();
    const enqueuedAt = job.retryCount === 0
      ? withoutTraceparent(job.data).enqueuedAt
      : undefined;
    if (enqueuedAt !== undefined) {
      instruments.jobStartDelay.record(
        Math.max(0, Date.now() - enqueuedAt) / 1000,
        { "messaging.destination.name": name },
      );
    }
    return this.#tracedJob(name, handler, job).then((result) => {
      const attributes = {
        "messaging.destination.name": name,
        "aftercommit.outcome": result.status,
      };
      instruments.jobDuration.record(
        (performance.now() - started) / 1000,
        attributes,
      );
      if (result.status === "failed") {
        const output = result.output as { name?: unknown } | undefined;
        instruments.failures.add(1, {
          "aftercommit.component": "job",
          "messaging.destination.name": name,
          "error.type": typeof output?.name === "string"
            ? output.name
            : "unknown",
        });
      }
      return result;
    });
  }

  #tracedJob<T>(
    name: string,
    handler: JobHandler<T>,
    job: PgBossJob<T>,
  ): Promise<JobResult> {
    const { data, traceparent } = withoutTraceparent(job.data);
    if (!tracing()) return this.#runJobIn(name, handler, job, data, undefined);
    // Every attempt of the job continues the trace it was enqueued in.
    return inSpan(`work ${name}`, {
      kind: SpanKind.CONSUMER,
      parent: contextFromTraceparent(traceparent),
      attributes: {
        "messaging.system": "pg-boss",
        "messaging.operation.type": "process",
        "messaging.operation.name": "work",
        "messaging.destination.name": name,
        "messaging.message.id": job.id,
        "aftercommit.job.attempt": job.retryCount + 1,
      },
    }, (span) => this.#runJobIn(name, handler, job, data, span));
  }

  async #runJobIn<T>(
    name: string,
    handler: JobHandler<T>,
    job: PgBossJob<T>,
    data: T,
    span: Span | undefined,
  ): Promise<JobResult> {
    const attempt = job.retryCount + 1;
    const view: Job<T> = {
      id: job.id,
      name,
      data,
      attempt,
      signal: job.signal,
    };
    // pg-boss aborts the signal when the attempt expires (or the queue stops
    // without waiting), then fails the job, but holds the worker until the
    // handler's promise settles. A handler that ignores its signal would
    // block the queue, so the wait ends at the abort: the worker fetches
    // again, and the handler's promise runs on unwatched.
    const { promise: aborted, resolve: onAbort } = Promise.withResolvers<
      typeof ABANDONED
    >();
    const abort = (): void => onAbort(ABANDONED);
    if (job.signal.aborted) abort();
    else job.signal.addEventListener("abort", abort, { once: true });
    const running = Promise.resolve().then(() => handler(view));
    try {
      if (await Promise.race([running, aborted]) === ABANDONED) {
        logger.warn(
          "Job {jobName} {jobId} (attempt {attempt}) is still running after its signal was aborted; its worker slot is freed and the handler is no longer awaited",
          { jobName: name, jobId: job.id, attempt },
        );
        running.then(
          () => strayJobSettled(name, job.id, attempt, "returned"),
          (error) => strayJobSettled(name, job.id, attempt, errorType(error)),
        );
        if (span !== undefined) {
          span.setAttribute("aftercommit.outcome", "abandoned");
          recordError(span, new JobAbandonedError());
        }
        return {
          id: job.id,
          status: "failed",
          output: {
            name: "JobAbandonedError",
            message:
              "the handler did not stop when the attempt expired or the queue stopped",
          },
        };
      }
      span?.setAttribute("aftercommit.outcome", "completed");
      return { id: job.id, status: "completed" };
    } catch (error) {
      logger.error(
        "Job {jobName} {jobId} failed on attempt {attempt}: {error}",
        { jobName: name, jobId: job.id, attempt, error: loggableError(error) },
      );
      if (span !== undefined) {
        span.setAttribute("aftercommit.outcome", "failed");
        recordError(span, error);
      }
      // A retry without delay is ready now; fetch it without waiting.
      this.#wake(name);
      return {
        id: job.id,
        status: "failed",
        output: error instanceof Error
          ? { name: error.name, message: error.message }
          : { message: `Non-error thrown: ${describe(error)}` },
      };
    } finally {
      job.signal.removeEventListener("abort", abort);
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
    const settings = { ...this.#defaults, ...this.#perQueue[name] };
    let deadLetter: string | undefined;
    if (settings.deadLetter && !name.endsWith(DEAD_LETTER_SUFFIX)) {
      deadLetter = name + DEAD_LETTER_SUFFIX;
      await this.#ensureQueue(deadLetter);
    }
    // create_queue ignores a queue that exists: its settings stay.
    await this.#boss.createQueue(name, {
      retryLimit: settings.retryLimit,
      retryDelay: settings.retryDelaySeconds,
      retryBackoff: settings.retryBackoff,
      // pg-boss accepts a maximum delay only with backoff.
      ...(settings.retryBackoff
        ? { retryDelayMax: settings.retryDelayMaxSeconds }
        : {}),
      expireInSeconds: settings.expireInSeconds,
      retentionSeconds: settings.retentionSeconds,
      deleteAfterSeconds: settings.deleteAfterSeconds,
      notify: true,
      ...(deadLetter === undefined ? {} : { deadLetter }),
    });
  }
}

// A request that prepare() checked and gave its id: enqueueMany trusts it.
// Its options carry the id, never the key.
class PreparedJob implements JobRequest {
  private constructor(
    readonly name: string,
    readonly data: unknown,
    readonly options: EnqueueOptions,
    readonly id: string,
  ) {}

  static of(
    name: string,
    data: unknown,
    options: EnqueueOptions | undefined,
  ): PreparedJob {
    let id: string;
    if (options?.key !== undefined) id = jobIdFor(name, options.key);
    else id = options?.id ?? crypto.randomUUID();
    const prepared: {
      -readonly [K in keyof EnqueueOptions]: EnqueueOptions[K];
    } = { id };
    if (options?.priority !== undefined) prepared.priority = options.priority;
    if (options?.startAfterSeconds !== undefined) {
      prepared.startAfterSeconds = options.startAfterSeconds;
    }
    if (options?.startAfter !== undefined) {
      prepared.startAfter = options.startAfter;
    }
    return new PreparedJob(name, data, prepared, id);
  }
}

const ABANDONED = Symbol("abandoned");

// Only its name reaches a span: a handler that outlived its attempt.
class JobAbandonedError extends Error {
  override readonly name = "JobAbandonedError";
}

// The trace context travels in the job's data, under a key the worker
// removes before the handler sees the data; only plain-object data carries
// it (an array or a primitive is left as it is).
const TRACEPARENT_KEY = "aftercommit.traceparent";
// With metrics on: when the job was enqueued (ms since the epoch), for the
// start delay of its first attempt.
const ENQUEUED_AT_KEY = "aftercommit.enqueuedAt";

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function withTraceparent(data: unknown): object | null {
  const traceparent = activeTraceparent();
  const metered = meters() !== undefined;
  if ((traceparent === undefined && !metered) || !isPlainObject(data)) {
    return data as object | null;
  }
  return {
    ...data,
    ...(traceparent === undefined ? {} : { [TRACEPARENT_KEY]: traceparent }),
    ...(metered ? { [ENQUEUED_AT_KEY]: Date.now() } : {}),
  };
}

function withoutTraceparent<T>(
  data: T,
): { data: T; traceparent: unknown; enqueuedAt: number | undefined } {
  if (
    !isPlainObject(data) ||
    (!Object.hasOwn(data, TRACEPARENT_KEY) &&
      !Object.hasOwn(data, ENQUEUED_AT_KEY))
  ) {
    return { data, traceparent: undefined, enqueuedAt: undefined };
  }
  const {
    [TRACEPARENT_KEY]: traceparent,
    [ENQUEUED_AT_KEY]: enqueuedAt,
    ...rest
  } = data;
  return {
    data: rest as T,
    traceparent,
    enqueuedAt: typeof enqueuedAt === "number" ? enqueuedAt : undefined,
  };
}

function sendAttributes(
  name: string | undefined,
  count: number,
): Record<string, string | number> {
  return {
    "messaging.system": "pg-boss",
    "messaging.operation.type": "send",
    "messaging.operation.name": "enqueue",
    ...(name === undefined ? {} : { "messaging.destination.name": name }),
    "messaging.batch.message_count": count,
  };
}

function deadLetterOf(
  dlq: string,
  job: JobWithMetadata<unknown>,
  includeData: boolean,
): DeadLetter {
  const output = job.sourceOutput as
    | { name?: unknown; message?: unknown }
    | null;
  let error: string | null = null;
  if (output !== null && typeof output === "object") {
    const message = typeof output.message === "string" ? output.message : "";
    error = typeof output.name === "string"
      ? `${output.name}: ${message}`
      : message || null;
  }
  const born = job.sourceCreatedOn ?? job.createdOn;
  return {
    id: job.id,
    queue: job.sourceName ?? dlq.slice(0, -DEAD_LETTER_SUFFIX.length),
    deadLetterQueue: dlq,
    originalId: job.sourceId,
    attempts: job.sourceRetryCount === null ? null : job.sourceRetryCount + 1,
    error,
    deadLetteredAt: new Date(job.createdOn),
    ageSeconds: Math.max(0, (Date.now() - new Date(born).getTime()) / 1000),
    // The trace context the job carried is not the user's data.
    ...(includeData ? { data: withoutTraceparent(job.data).data } : {}),
  };
}

function assertDeadLetterSelection(
  selection: unknown,
  action: string,
): { queue?: string; ids?: readonly string[] } {
  const usage =
    'pass { ids: [...] }, { queue: "send-welcome-email" } or { all: true }';
  if (
    selection === null || typeof selection !== "object" ||
    Array.isArray(selection)
  ) {
    throw new TypeError(
      `Cannot ${action}: expected a selection, received ${
        describe(selection)
      }; ${usage}`,
    );
  }
  const keys = Object.keys(selection).filter((k) =>
    (selection as Record<string, unknown>)[k] !== undefined
  );
  if (keys.length !== 1 || !["ids", "queue", "all"].includes(keys[0]!)) {
    throw new TypeError(
      `Cannot ${action}: the selection must have exactly one of ids, queue or all, received ${
        keys.length === 0 ? "none" : keys.join(", ")
      }; ${usage}`,
    );
  }
  const { ids, queue, all } = selection as {
    ids?: unknown;
    queue?: unknown;
    all?: unknown;
  };
  if (keys[0] === "all") {
    if (all !== true) {
      throw new TypeError(
        `Cannot ${action}: selection.all must be true, received ${
          describe(all)
        }; ${usage}`,
      );
    }
    return {};
  }
  if (keys[0] === "queue") {
    assertQueueName(queue, action);
    return { queue: queue as string };
  }
  if (
    !Array.isArray(ids) || ids.length === 0 || ids.length > 100_000 ||
    !ids.every((id) => typeof id === "string" && id !== "")
  ) {
    throw new TypeError(
      `Cannot ${action}: selection.ids must be an array of 1 to 100000 job ids (non-empty strings), received ${
        Array.isArray(ids) ? `an array of ${ids.length}` : describe(ids)
      }`,
    );
  }
  return { ids: ids as string[] };
}

function strayJobSettled(
  name: string,
  id: string,
  attempt: number,
  how: string,
): void {
  logger.info(
    "Job {jobName} {jobId} (attempt {attempt}), abandoned at its expiry, settled later ({how})",
    { jobName: name, jobId: id, attempt, how },
  );
}

// The checks of enqueue(); returns the action for later messages.
function assertJob(
  name: unknown,
  data: unknown,
  options: unknown,
  what = "enqueue job",
): string {
  assertQueueName(name, what);
  const action = `${what} on queue "${name}"`;
  assertJsonData(data, action);
  assertEnqueueOptions(options, "options", action);
  return action;
}

function assertEnqueueOptions(
  options: unknown,
  what: string,
  action: string,
): void {
  assertOptionsObject(options, what, action);
  if (options === undefined) return;
  const { key, id, priority, startAfterSeconds, startAfter } =
    options as EnqueueOptions;
  assertKey(key, action);
  assertJobId(id, key, action);
  assertInteger(
    priority,
    `${what}.priority`,
    action,
    -2_147_483_648,
    2_147_483_647,
  );
  assertNumber(startAfterSeconds, `${what}.startAfterSeconds`, action, 0);
  if (startAfter !== undefined) {
    if (startAfterSeconds !== undefined) {
      throw new TypeError(
        `Cannot ${action}: pass ${what}.startAfter or ${what}.startAfterSeconds, not both`,
      );
    }
    assertStartAfter(startAfter, `${what}.startAfter`, action);
  }
}

// pg-boss's rule for schedule keys is its rule for queue names.
function assertScheduleKey(key: unknown, action: string): void {
  if (key === undefined) return;
  if (typeof key !== "string" || !/^[A-Za-z0-9_.\-/]+$/.test(key)) {
    throw new TypeError(
      `Cannot ${action}: options.key must be a name of letters, digits, "_", "-", "." and "/", such as "eu", received ${
        typeof key === "string" ? JSON.stringify(key) : describe(key)
      }`,
    );
  }
}

// When a job may start, for pg-boss: a number of seconds above 0 or a Date;
// undefined when it may start at once.
function startAfterOf(options: EnqueueOptions): number | Date | undefined {
  const value = options.startAfter ?? options.startAfterSeconds;
  return value instanceof Date || (value ?? 0) > 0 ? value : undefined;
}

function assertQueueSettings(
  settings: unknown,
  what: string,
  action: string,
): void {
  assertOptionsObject(settings, what, action);
  if (settings === undefined) return;
  const s = settings as QueueSettings;
  const max = 2_147_483_647;
  assertInteger(s.retryLimit, `${what}.retryLimit`, action, 0, max);
  assertInteger(
    s.retryDelaySeconds,
    `${what}.retryDelaySeconds`,
    action,
    0,
    max,
  );
  assertBoolean(s.retryBackoff, `${what}.retryBackoff`, action);
  assertInteger(
    s.retryDelayMaxSeconds,
    `${what}.retryDelayMaxSeconds`,
    action,
    1,
    max,
  );
  assertInteger(
    s.expireInSeconds,
    `${what}.expireInSeconds`,
    action,
    1,
    86_400,
  );
  assertInteger(s.retentionSeconds, `${what}.retentionSeconds`, action, 1, max);
  assertInteger(
    s.deleteAfterSeconds,
    `${what}.deleteAfterSeconds`,
    action,
    0,
    max,
  );
  assertBoolean(s.deadLetter, `${what}.deadLetter`, action);
}

function assertConnectOptions(
  options: PgBossJobQueueOptions,
  server: boolean,
  action: string,
): void {
  const { dataDir, pglite, schema, queues } = options;
  if (server && (dataDir !== undefined || pglite !== undefined)) {
    throw new TypeError(
      `Cannot ${action}: options.${
        dataDir !== undefined ? "dataDir" : "pglite"
      } is for the embedded database, but a server URL is in use; drop the option, or pass no URL and unset JOB_QUEUE_DATABASE_URL`,
    );
  }
  if (
    dataDir !== undefined && (typeof dataDir !== "string" || dataDir === "")
  ) {
    throw new TypeError(
      `Cannot ${action}: options.dataDir must be a non-empty path, received ${
        dataDir === "" ? "an empty string" : describe(dataDir)
      }`,
    );
  }
  if (pglite !== undefined) {
    if (dataDir !== undefined) {
      throw new TypeError(
        `Cannot ${action}: pass options.pglite or options.dataDir, not both; a PGlite instance already has its storage`,
      );
    }
    const like = pglite as { query?: unknown; exec?: unknown } | null;
    if (
      typeof like !== "object" || like === null ||
      typeof like.query !== "function" || typeof like.exec !== "function"
    ) {
      throw new TypeError(
        `Cannot ${action}: options.pglite must be a PGlite instance, received ${
          describe(pglite)
        }`,
      );
    }
  }
  if (
    schema !== undefined &&
    (typeof schema !== "string" || !SCHEMA_NAME.test(schema))
  ) {
    throw new TypeError(
      `Cannot ${action}: options.schema must be a plain identifier (letters, digits and "_", not starting with a digit, at most 50 characters), received ${
        typeof schema === "string" ? JSON.stringify(schema) : describe(schema)
      }`,
    );
  }
  assertQueueSettings(options.queueDefaults, "options.queueDefaults", action);
  assertOptionsObject(queues, "options.queues", action);
  for (const [name, settings] of Object.entries(queues ?? {})) {
    assertQueueName(name, `${action}: options.queues`);
    assertQueueSettings(
      settings,
      `options.queues[${JSON.stringify(name)}]`,
      action,
    );
  }
  assertBoolean(options.listenNotify, "options.listenNotify", action);
  assertBoolean(options.supervise, "options.supervise", action);
  assertInteger(
    options.maxConnections,
    "options.maxConnections",
    action,
    1,
    1000,
  );
  assertNumber(
    options.stopTimeoutSeconds,
    "options.stopTimeoutSeconds",
    action,
    1,
  );
  assertBoolean(options.runSchedules, "options.runSchedules", action);
  assertInteger(
    options.scheduleCheckIntervalSeconds,
    "options.scheduleCheckIntervalSeconds",
    action,
    1,
    45,
  );
}
