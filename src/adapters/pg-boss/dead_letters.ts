// Dead letters: jobs whose retries were used up, waiting in `<queue>__dead`.
import { getLogger } from "@logtape/logtape";
import type { JobWithMetadata, PgBoss } from "pg-boss";
import { assertQueueName } from "../../application/job_queue.ts";
import {
  boolean,
  integer,
  readOptions,
  selection,
} from "../../internal/rules.ts";
import { ENQUEUED_AT, type QueueAccess, withoutStamp } from "./_worker.ts";

const logger = getLogger(["aftercommit", "jobs"]);

/** The suffix of a queue's dead-letter queue: `send-email__dead`. */
export const DEAD_LETTER_SUFFIX = "__dead";

/** A job whose retries were used up, from `PgBossJobQueue.deadLetters()`. */
export interface DeadLetter {
  /** Its id in the dead-letter queue (to retry or delete it). */
  readonly id: string;
  /** The queue it failed on, where a retry sends it. */
  readonly queue: string;
  /** The dead-letter queue it waits in (`<queue>__dead`). */
  readonly deadLetterQueue: string;
  /** The id of the job that failed. */
  readonly originalId: string | null;
  /** The attempts the failed job made. */
  readonly attempts: number | null;
  /**
   * The last failure, `Name: message` (or the message, or the text pg-boss
   * recorded), when the job recorded one.
   */
  readonly error: string | null;
  /** When it was dead-lettered. */
  readonly deadLetteredAt: Date;
  /** Seconds since the original job was created. */
  readonly ageSeconds: number;
  /** The job's data; only with `includeData: true`. */
  readonly data?: unknown;
}

/** Options of `PgBossJobQueue.deadLetters()`. */
export interface DeadLetterListOptions {
  /** Only this (original) queue's. Default: every queue. */
  readonly queue?: string;
  /** At most this many, oldest first (1 to 10,000). Default: 100. */
  readonly limit?: number;
  /** Include each job's data (it may hold personal data). Default: false. */
  readonly includeData?: boolean;
}

/**
 * Which dead letters a retry or delete is about: by id (UUIDs, in any case;
 * other ids match nothing), by queue, or all.
 */
export type DeadLetterSelection =
  | { readonly ids: readonly string[] }
  | { readonly queue: string }
  | { readonly all: true };

const LIST = {
  // A queue name, checked as everywhere else; `undefined` passes.
  queue: (value: unknown, _: string, action: string): string | undefined => {
    if (value !== undefined) assertQueueName(value, action);
    return value as string | undefined;
  },
  limit: integer(1, 10_000, 100),
  includeData: boolean(false),
};

/** The dead-letter operations of one pg-boss instance (see `PgBossJobQueue`). */
export class DeadLetters {
  constructor(
    private readonly boss: PgBoss,
    private readonly queue: QueueAccess,
    private readonly schema: string,
  ) {}

  async list(options: DeadLetterListOptions): Promise<DeadLetter[]> {
    const action = "list dead letters";
    const { queue, limit, includeData } = readOptions(options, LIST, action);
    this.queue.assertRunning(action);
    const letters: DeadLetter[] = [];
    for (const dlq of await this.#queues(queue)) {
      const jobs = await this.boss.findJobs(dlq, { queued: true, limit });
      for (const job of jobs) letters.push(letterOf(dlq, job, includeData));
    }
    return letters
      .sort((a, b) => a.deadLetteredAt.getTime() - b.deadLetteredAt.getTime())
      .slice(0, limit);
  }

  count(selection: DeadLetterSelection): Promise<number> {
    return this.#each(selection, "count", (_, ids) => ids.length);
  }

  retry(selection: DeadLetterSelection): Promise<number> {
    return this.#each(selection, "retry", async (dlq, ids) => {
      // A retry is an enqueue: its start delay counts from now, not from the
      // stamp the dead letter kept from its first enqueue.
      await this.boss.getDb().executeSql(
        `UPDATE ${this.schema}.job SET data = jsonb_set(data,
           '{${ENQUEUED_AT}}', to_jsonb($3::float8))
         WHERE name = $1 AND id = ANY($2::uuid[])
           AND jsonb_typeof(data) = 'object' AND data ? '${ENQUEUED_AT}'`,
        [dlq, ids, Date.now()],
      );
      const moved = await this.boss.redrive(dlq, { ids, limit: ids.length });
      this.queue.wake(originalQueue(dlq));
      return moved;
    }, "Retried");
  }

  delete(selection: DeadLetterSelection): Promise<number> {
    return this.#each(selection, "delete", async (dlq, ids) => {
      const response = await this.boss.deleteJob(dlq, ids);
      return (response as { affected?: number }).affected ?? 0;
    }, "Deleted");
  }

  // The dead-letter queues in the database, or the one of `queue`.
  async #queues(queue?: string): Promise<string[]> {
    const only = queue === undefined ? undefined : [
      queue.endsWith(DEAD_LETTER_SUFFIX) ? queue : queue + DEAD_LETTER_SUFFIX,
    ];
    const names = await keysOf(
      1000,
      (page) => this.boss.getQueues(only, page),
      (q) => q.name,
    );
    return names.filter((name) => name.endsWith(DEAD_LETTER_SUFFIX));
  }

  // Reads the ids a selection names in every dead-letter queue before
  // changing anything (so a bad selection changes nothing), then runs `op`
  // on them 1000 at a time; answers the sum, logged as `done` if given.
  async #each(
    value: DeadLetterSelection,
    verb: string,
    op: (dlq: string, ids: string[]) => number | Promise<number>,
    done?: string,
  ): Promise<number> {
    const action = `${verb} dead letters`;
    const { by, ids } = selection(
      value,
      action,
      "queue",
      (queue) => LIST.queue(queue, "selection.queue", action)!,
      { max: 100_000, noun: "job ids" },
      'pass { ids: [...] }, { queue: "send-welcome-email" } or { all: true }',
    );
    this.queue.assertRunning(action);
    // By the job table's key, in one statement (pg-boss's findJobs reads one
    // queue): ids are UUIDs, compared as PostgreSQL does, in any case.
    const { rows } = await this.boss.getDb().executeSql(
      `SELECT name, id::text AS id FROM ${this.schema}.job
       WHERE name = ANY($1::text[]) AND state < 'active'
         AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))
       ORDER BY name, created_on, id`,
      [await this.#queues(by), ids?.filter((id) => UUID.test(id)) ?? null],
    );
    const found = Map.groupBy(
      rows as { name: string; id: string }[],
      (r) => r.name,
    );
    let total = 0;
    for (const [dlq, matched] of found) {
      for (let i = 0; i < matched.length; i += 1000) {
        total += await op(dlq, matched.slice(i, i + 1000).map((r) => r.id));
      }
    }
    if (done) logger.info(`${done} {count} dead letters`, { count: total });
    return total;
  }
}

// The keys of every row of a paged pg-boss read, `limit` rows a page, each
// page after the last key of the one before.
async function keysOf<T>(
  limit: number,
  read: (page: { limit: number; after?: string }) => Promise<T[]>,
  key: (row: T) => string,
): Promise<string[]> {
  const keys: string[] = [];
  for (;;) {
    const after = keys.length === 0 ? {} : { after: keys.at(-1)! };
    const page = await read({ limit, ...after });
    keys.push(...page.map(key));
    if (page.length < limit) return keys;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const originalQueue = (dlq: string) => dlq.slice(0, -DEAD_LETTER_SUFFIX.length);

function letterOf(
  dlq: string,
  job: JobWithMetadata<unknown>,
  includeData: boolean,
): DeadLetter {
  // pg-boss stores a failure it records itself as `{ value: text }` (a stop
  // while active) or `{ value: { message } }` (an expiry).
  const { value } = (job.sourceOutput ?? {}) as { value?: unknown };
  const out =
    (typeof value === "string"
      ? { message: value }
      : value ?? job.sourceOutput) as
        | { name?: unknown; message?: unknown }
        | null;
  const message = typeof out?.message === "string" ? out.message : "";
  const born = job.sourceCreatedOn ?? job.createdOn;
  return {
    id: job.id,
    queue: job.sourceName ?? originalQueue(dlq),
    deadLetterQueue: dlq,
    originalId: job.sourceId,
    attempts: job.sourceRetryCount === null ? null : job.sourceRetryCount + 1,
    error: out === null || typeof out !== "object"
      ? null
      : typeof out.name === "string"
      ? `${out.name}: ${message}`
      : message || null,
    deadLetteredAt: new Date(job.createdOn),
    ageSeconds: Math.max(0, (Date.now() - new Date(born).getTime()) / 1000),
    // The trace context the job carried is not the user's data.
    ...(includeData ? { data: withoutStamp(job.data).data } : {}),
  };
}
