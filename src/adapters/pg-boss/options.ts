// `PgBossJobQueue.connect()`'s options, checked and turned into pg-boss's,
// and the start.
import { getLogger } from "@logtape/logtape";
import { fromPglite, PgBoss, type PGliteLike, type Queue } from "pg-boss";
import { loggableError } from "../../internal/loggable_error.ts";
import { DEAD_LETTER_SUFFIX } from "./dead_letters.ts";
import { assertQueueName } from "../../application/job_queue.ts";
import {
  assertObject,
  boolean,
  expected,
  fail,
  integer,
  matches,
  number,
  readOptions,
} from "../../internal/rules.ts";

/**
 * How a queue retries, expires and keeps jobs (pg-boss's queue options, in
 * seconds), applied when the adapter creates it (not to an existing queue).
 */
export interface QueueSettings {
  /** Retries after the first attempt. Default: 5. */
  readonly retryLimit?: number;
  /** Seconds before the first retry. Default: 1. */
  readonly retryDelaySeconds?: number;
  /** Double the delay at each retry (with jitter). Default: true. */
  readonly retryBackoff?: boolean;
  /** The longest retry delay with backoff, in seconds. Default: 300. */
  readonly retryDelayMaxSeconds?: number;
  /** Seconds an attempt may run; its `signal` is aborted then. Default: 900. */
  readonly expireInSeconds?: number;
  /** Seconds a job (or a dead letter) may wait to start. Default: 1209600. */
  readonly retentionSeconds?: number;
  /** Seconds a finished job is kept (its key stays used); 0: forever. Default: 604800. */
  readonly deleteAfterSeconds?: number;
  /** Copy a job whose retries are used up to `<name>__dead`. Default: true. */
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
  /** The schema of pg-boss's tables (a plain identifier). Default: "pgboss". */
  readonly schema?: string;
  /** Settings of every queue, over {@linkcode DEFAULT_QUEUE_SETTINGS}. Default: `{}`. */
  readonly queueDefaults?: QueueSettings;
  /** Settings per queue name, over `queueDefaults`. Default: `{}`. */
  readonly queues?: Readonly<Record<string, QueueSettings>>;
  /**
   * Wake other processes' workers with `LISTEN`/`NOTIFY` (not through
   * PgBouncer's transaction mode).
   * @default {true}
   */
  readonly listenNotify?: boolean;
  /** Run pg-boss's maintenance (expiry, deletion) in this process. Default: true. */
  readonly supervise?: boolean;
  /** Send the jobs of the schedules from this process. Default: false. */
  readonly runSchedules?: boolean;
  /** Seconds between two checks of the schedules (1 to 45). Default: 30. */
  readonly scheduleCheckIntervalSeconds?: number;
  /** Server only: the connection pool's size. Default: 10. */
  readonly maxConnections?: number;
  /** Seconds `stop()` waits for running handlers before aborting them. Default: 30. */
  readonly stopTimeoutSeconds?: number;
  /**
   * Install pg-boss's schema when it is missing, and migrate it when it is
   * older. `false`: change no schema; `connect()` throws a TypeError when
   * the schema holds no pg-boss tables or tables of another pg-boss version.
   * @default {true}
   */
  readonly migrate?: boolean;
}

/** Where the jobs live. */
export type JobQueueBackend = "postgres" | "pglite";

const MAX = 2_147_483_647;
// The rules of a queue's settings, over `d`.
const settings = (d: Required<QueueSettings>) => ({
  retryLimit: integer(0, MAX, d.retryLimit),
  retryDelaySeconds: integer(0, MAX, d.retryDelaySeconds),
  retryBackoff: boolean(d.retryBackoff),
  retryDelayMaxSeconds: integer(1, MAX, d.retryDelayMaxSeconds),
  expireInSeconds: integer(1, 86_400, d.expireInSeconds),
  retentionSeconds: integer(1, MAX, d.retentionSeconds),
  deleteAfterSeconds: integer(0, MAX, d.deleteAfterSeconds),
  deadLetter: boolean(d.deadLetter),
});
const CONNECT = {
  schema: matches(
    /^[A-Za-z_][A-Za-z0-9_]{0,49}$/,
    'a plain identifier (letters, digits and "_", not starting with a digit, at most 50 characters)',
  ),
  listenNotify: boolean(true),
  supervise: boolean(true),
  runSchedules: boolean(false),
  scheduleCheckIntervalSeconds: integer(1, 45, 30),
  maxConnections: integer(1, 1000, 10),
  stopTimeoutSeconds: number(1, 30),
  migrate: boolean(true),
};
const URL_HINT =
  "pass a URL such as postgresql://user:password@host:5432/jobs, or a PGlite instance for an embedded database";

/** What the queue needs of `connect()`'s options. */
export interface ConnectConfig {
  readonly backend: JobQueueBackend;
  readonly schema: string;
  readonly stopTimeoutMs: number;
  /** pg-boss's options of queue `name`, with its dead-letter queue's name. */
  queueOptions(name: string): Omit<Queue, "name">;
}

/** Checks `connect()`'s arguments and starts pg-boss, logging its errors. */
export async function startBoss(
  database: unknown,
  options: unknown,
): Promise<{ boss: PgBoss; config: ConnectConfig }> {
  const action = "connect job queue";
  const url = typeof database === "string";
  let where = "the embedded jobs database";
  if (url) {
    // Never repeats the URL: it may hold a password.
    const parsed = URL.parse(database);
    const problem = database.trim() === ""
      ? "the URL is empty"
      : parsed === null
      ? "the URL is not a valid URL"
      : parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:"
      ? `the URL has the scheme "${parsed.protocol}", expected "postgres:" or "postgresql:"`
      : parsed.hostname === "" && !parsed.searchParams.has("host")
      ? "the URL names no host"
      : undefined;
    if (problem !== undefined) fail(action, `${problem}; ${URL_HINT}`);
    where = "the PostgreSQL jobs database";
    const { hostname, port, pathname, search, hash, searchParams } = parsed!;
    // An "@" past the host: an unencoded "/", "?" or "#" in the password cut
    // the URL short, and the host and path may hold the password.
    if (!`${pathname}${search}${hash}`.includes("@")) {
      const [host, db] = [searchParams.get("host") ?? hostname, pathname];
      where += ` on ${host}:${searchParams.get("port") ?? (port || "5432")}${
        db.length > 1 ? `, database ${db.slice(1)}` : ""
      }`;
    }
  } else {
    const db = database as Partial<Record<"query" | "exec", unknown>> | null;
    if (
      typeof db !== "object" || typeof db?.query !== "function" ||
      typeof db.exec !== "function"
    ) {
      expected(action, "a postgres:// URL or a PGlite instance", db, URL_HINT);
    }
  }
  const o = readOptions(options, CONNECT, action);
  const schema = o.schema ?? "pgboss";
  const config: ConnectConfig = {
    backend: url ? "postgres" : "pglite",
    schema,
    stopTimeoutMs: o.stopTimeoutSeconds * 1000,
    queueOptions: queueOptions(options as PgBossJobQueueOptions, action),
  };
  const boss = new PgBoss({
    schema,
    useListenNotify: o.listenNotify,
    supervise: o.supervise,
    // The cron pass (and its timers) runs only where asked for.
    schedule: o.runSchedules,
    cronMonitorIntervalSeconds: o.scheduleCheckIntervalSeconds,
    migrate: o.migrate,
    ...(url
      ? {
        connectionString: database,
        max: o.maxConnections,
        application_name: "aftercommit-jobs",
        // An unreachable server fails fast (the outbox relay backs off on it).
        connectionTimeoutMillis: 5000,
      }
      : { backend: "pglite", db: fromPglite(database as PGliteLike) }),
  });
  const logger = getLogger(["aftercommit", "jobs"]);
  // Without an "error" listener an EventEmitter throws; log instead.
  boss.on(
    "error",
    onceEvery(30_000, (error, repeats) =>
      logger.error(
        repeats === 0
          ? "Job queue background error: {error}"
          : "Job queue background error: {error}; the one before it repeated {repeats} more times, not logged",
        { error, repeats },
      )),
  );
  boss.on("warning", ({ message, data }) => {
    const type = (data as { type?: unknown } | undefined)?.type;
    logger.warn("Job queue warning: {message}", { message, type });
  });
  try {
    await boss.start();
  } catch (cause) {
    await boss.stop({ graceful: false }).catch(() => {});
    // pg-boss's check when it may not install or migrate.
    const message = (cause as Error | undefined)?.message;
    const found = message === "pg-boss is not installed"
      ? "no pg-boss tables"
      : message === "pg-boss database requires migrations"
      ? "the tables of another pg-boss version"
      : undefined;
    if (!o.migrate && found !== undefined) {
      throw new TypeError(
        `Cannot connect job queue: the schema "${schema}" on ${where} holds ${found}; check the schema and the database, or connect with migrate: true to install or migrate it`,
        { cause },
      );
    }
    const hint = url
      ? "check that the server is running and the URL's host, port, database and credentials"
      : "see the cause";
    throw new Error(
      `Cannot connect job queue: pg-boss did not start on ${where}; ${hint}`,
      { cause },
    );
  }
  return { boss, config };
}

/**
 * Wraps `log` so that a repeat of the last error logged (same name and
 * message) within `ms` is counted, not logged, as during an outage.
 */
export function onceEvery(
  ms: number,
  log: (error: Error, repeats: number) => void,
): (error: unknown) => void {
  let last = "";
  let loggedAt = -Infinity;
  let repeats = 0;
  return (error) => {
    // pg-boss emits its workers' errors as plain objects (the error's own
    // fields spread): an Error again, of its message, code and stack only.
    const { message, stack, code } = Object(error) as Record<string, unknown>;
    if (
      typeof error === "object" && !(error instanceof Error) &&
      typeof message === "string"
    ) {
      error = Object.assign(new Error(message), {
        ...(typeof code === "string" ? { name: `Error ${code}` } : {}),
        ...(typeof stack === "string" ? { stack } : {}),
      });
    }
    const copy = loggableError(error);
    const key = `${copy.name}: ${copy.message}`;
    const now = performance.now();
    if (key === last && now - loggedAt < ms) {
      repeats++;
      return;
    }
    log(copy, repeats);
    [last, loggedAt, repeats] = [key, now, 0];
  };
}

// Checks `queueDefaults` and `queues`; returns each queue's pg-boss options.
function queueOptions(
  options: PgBossJobQueueOptions | undefined,
  action: string,
): (name: string) => Omit<Queue, "name"> {
  const base: Required<QueueSettings> = readOptions(
    options?.queueDefaults,
    settings(DEFAULT_QUEUE_SETTINGS),
    action,
    "options.queueDefaults",
  );
  assertObject(options?.queues, "options.queues", action);
  const perQueue = new Map<string, Required<QueueSettings>>();
  for (const [name, given] of Object.entries(options?.queues ?? {})) {
    assertQueueName(name, `${action}: options.queues`);
    const what = `options.queues[${JSON.stringify(name)}]`;
    perQueue.set(name, readOptions(given, settings(base), action, what));
  }
  return (name) => {
    // pg-boss keeps a dead letter for its dead-letter queue's retention: a
    // dead-letter queue not configured itself takes its queue's.
    const queue = name.endsWith(DEAD_LETTER_SUFFIX)
      ? perQueue.get(name.slice(0, -DEAD_LETTER_SUFFIX.length))
      : undefined;
    const { retryDelaySeconds, retryDelayMaxSeconds, deadLetter, ...same } =
      perQueue.get(name) ??
        (queue ? { ...base, retentionSeconds: queue.retentionSeconds } : base);
    return {
      ...same,
      retryDelay: retryDelaySeconds,
      // pg-boss accepts a maximum delay only with backoff.
      ...(same.retryBackoff ? { retryDelayMax: retryDelayMaxSeconds } : {}),
      notify: true,
      // Dead-letter queues have none of their own.
      ...(deadLetter && !name.endsWith(DEAD_LETTER_SUFFIX)
        ? { deadLetter: name + DEAD_LETTER_SUFFIX }
        : {}),
    };
  };
}
