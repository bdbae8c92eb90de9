/**
 * The job queue's counts by queue and state, and its recent flow, for
 * `PgBossJobQueue.stats()` (and the dashboard).
 *
 * @module
 */
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
  /** Median ms from enqueue (the commit) to first attempt; `null` if none. */
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
  /** Seconds of recent activity in `window` (1 to 3600). @default {10} */
  readonly windowSeconds?: number;
}

const DEAD = DEAD_LETTER_SUFFIX;
type Count = keyof QueueCounts;

/** Reads {@linkcode JobQueueStats} in one statement over pg-boss's tables. */
export async function readJobQueueStats(
  boss: PgBoss,
  schema: string,
  options: JobQueueStatsOptions,
): Promise<JobQueueStats> {
  const { windowSeconds } = readOptions(options, {
    windowSeconds: integer(1, 3600, 10),
  }, "read job queue stats");
  // `schema` was checked by connect(). By queue name, every part runs on
  // pg-boss's indexes, not on the completed jobs kept for days.
  const { rows } = await boss.getDb().executeSql(
    `with names as (select name from "${schema}".queue),
    recent as (
      select created_on, started_on, retry_count from "${schema}".job
      where name = any(array(select name from names where right(name, ${DEAD.length}) <> '${DEAD}'))
        and completed_on >= now() - make_interval(secs => $1)
    )
    select 'count' as kind, name, state::text as state, count(*)::int as n,
      null::float8 as p50, null::float8 as p99
    from "${schema}".job
    where name = any(array(select name from names))
      and state in ('created', 'retry', 'active', 'failed')
    group by name, state
    union all
    select 'queue', name, null, 0, null, null from names
    union all
    select 'window', null, null, (select count(*) from recent)::int, null, null
    union all
    select 'latency', null, null, count(*)::int,
      percentile_cont(0.5) within group (order by extract(epoch from started_on - created_on)),
      percentile_cont(0.99) within group (order by extract(epoch from started_on - created_on))
    from recent
    where retry_count = 0`,
    [windowSeconds],
  );
  const queues = new Map<string, { -readonly [K in Count]: QueueCounts[K] }>();
  const queue = (name: string) => {
    let q = queues.get(name);
    if (q === undefined) {
      q = { name, created: 0, retry: 0, active: 0, failed: 0, deadLetters: 0 };
      queues.set(name, q);
    }
    return q;
  };
  const ms = (seconds: unknown) =>
    seconds == null ? null : Number(seconds) * 1000;
  const window = {
    seconds: windowSeconds,
    completed: 0,
    measured: 0,
    startLatencyP50Ms: null as number | null,
    startLatencyP99Ms: null as number | null,
  };
  for (const row of rows as Record<string, unknown>[]) {
    const n = Number(row.n);
    const name = String(row.name);
    const state = row.state as Exclude<Count, "name" | "deadLetters"> | null;
    if (row.kind === "window") window.completed = n;
    else if (row.kind === "latency") {
      window.measured = n;
      window.startLatencyP50Ms = ms(row.p50);
      window.startLatencyP99Ms = ms(row.p99);
    } else if (name.endsWith(DEAD)) {
      // A dead letter waits as a created (or retry) job of `<name>__dead`.
      if (state === "created" || state === "retry") {
        queue(name.slice(0, -DEAD.length)).deadLetters += n;
      }
    } else if (state === null) queue(name);
    else queue(name)[state] += n;
  }
  return {
    queues: [...queues.values()].sort((a, b) => a.name.localeCompare(b.name)),
    window,
  };
}
