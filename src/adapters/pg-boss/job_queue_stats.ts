// The job queue's counts by queue and state, and its recent flow, for
// `PgBossJobQueue.stats()` (and the dashboard).
import type { PgBoss } from "pg-boss";
import { integer, readOptions } from "../../internal/rules.ts";
import { DEAD_LETTER_SUFFIX } from "./dead_letters.ts";

/** One queue's jobs by state, from `PgBossJobQueue.stats()`. */
export interface QueueCounts {
  /** The queue's name. */
  readonly name: string;
  /** Jobs waiting for their first attempt (deferred ones included). */
  readonly created: number;
  /** Jobs waiting for a retry. */
  readonly retry: number;
  /** Jobs a worker is running. */
  readonly active: number;
  /** Jobs that used up their retries (until their retention ends). */
  readonly failed: number;
  /** Jobs in the queue's dead-letter queue (`<name>__dead`). */
  readonly deadLetters: number;
}

/** What the job queue did in the last few seconds. */
export interface JobQueueWindow {
  /** How many seconds the window covers, ending now (database clock). */
  readonly seconds: number;
  /** Jobs that completed in the window. */
  readonly completed: number;
  /** Jobs completed in the window on their first attempt: those measured. */
  readonly measured: number;
  /**
   * Median ms from when the job could start (its enqueue, right after the
   * commit, or its `startAfter` if later) to its first attempt; `null` if none.
   */
  readonly startLatencyP50Ms: number | null;
  /** The 99th percentile of the same; `null` if none. */
  readonly startLatencyP99Ms: number | null;
}

/** The job queue's state, from `PgBossJobQueue.stats()`. */
export interface JobQueueStats {
  /** Every queue, by name (dead-letter queues in their `deadLetters`). */
  readonly queues: readonly QueueCounts[];
  /** The last `windowSeconds`. */
  readonly window: JobQueueWindow;
}

/** Options of `PgBossJobQueue.stats()`. */
export interface JobQueueStatsOptions {
  /** Seconds of recent activity in `window` (1 to 3600). Default: 10. */
  readonly windowSeconds?: number;
}

const DEAD = DEAD_LETTER_SUFFIX;
const ZERO = { created: 0, retry: 0, active: 0, failed: 0, deadLetters: 0 };
type Counts = { -readonly [K in keyof QueueCounts]: QueueCounts[K] };
type Row = Omit<JobQueueWindow, "seconds" | "completed"> & {
  name: string | null;
  state: Exclude<keyof QueueCounts, "name" | "deadLetters">;
  n: number;
};

/** Reads {@linkcode JobQueueStats} in one statement over pg-boss's tables. */
export async function readJobQueueStats(
  boss: PgBoss,
  schema: string,
  options: JobQueueStatsOptions,
): Promise<JobQueueStats> {
  const { windowSeconds } = readOptions(options, {
    windowSeconds: integer(1, 3600, 10),
  }, "read job queue stats");
  const latency = (p: number) =>
    `percentile_cont(${p}) within group (order by extract(epoch from started_on - greatest(created_on, start_after)) * 1000) filter (where retry_count = 0)`;
  // `schema` was checked by connect() (a plain identifier) and is written
  // unquoted, as pg-boss writes it (folded to lower case). By queue name,
  // every part runs on pg-boss's indexes, not on the completed jobs kept
  // for days. A delayed job's latency starts at its start_after.
  const { rows } = await boss.getDb().executeSql(
    `with names as (select name from ${schema}.queue),
    live as (select name from names where right(name, ${DEAD.length}) <> '${DEAD}')
    select null as name, null as state, count(*)::int as n,
      (count(*) filter (where retry_count = 0))::int as measured,
      ${latency(0.5)} as "startLatencyP50Ms",
      ${latency(0.99)} as "startLatencyP99Ms"
    from ${schema}.job
    where name = any(array(select name from live))
      and completed_on >= now() - make_interval(secs => $1)
    union all
    select name, state::text, count(*)::int, null, null, null
    from ${schema}.job
    where name = any(array(select name from names))
      and state in ('created', 'retry', 'active', 'failed')
    group by name, state
    union all
    select name, 'created', 0, null, null, null from live`,
    [windowSeconds],
  );
  const queues = new Map<string, Counts>();
  const counts = (name: string) =>
    queues.get(name) ?? queues.set(name, { name, ...ZERO }).get(name)!;
  let window!: JobQueueWindow;
  for (const { name, state, n, ...rest } of rows as Row[]) {
    if (name === null) {
      window = { seconds: windowSeconds, completed: n, ...rest };
    } else if (!name.endsWith(DEAD)) counts(name)[state] += n;
    // A dead letter waits as a created (or retry) job of `<name>__dead`.
    else if (state === "created" || state === "retry") {
      counts(name.slice(0, -DEAD.length)).deadLetters += n;
    }
  }
  return {
    queues: [...queues.values()].sort((a, b) => a.name.localeCompare(b.name)),
    window,
  };
}
