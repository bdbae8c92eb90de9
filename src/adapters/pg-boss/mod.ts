/**
 * The pg-boss job queue adapter: {@linkcode PgBossJobQueue} implements the
 * `JobQueue` port on [pg-boss](https://github.com/timgit/pg-boss).
 *
 * @example Handlers enqueue through a batching publisher: one round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { PGlite } from "@electric-sql/pglite";
 * import { BatchingJobQueue, EventBus } from "@aftercommit/core";
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 * await using pglite = await PGlite.create();
 * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
 * const batching = new BatchingJobQueue(jobs);
 * const bus = new EventBus();
 * bus.register(UserRegistered, async (e) => {
 *   await batching.enqueue("welcome", { userId: e.userId });
 * });
 * const events = [new UserRegistered("u1"), new UserRegistered("u2")];
 * await batching.publisher(bus).publishAll(events);
 * assert.deepEqual((await jobs.stats()).queues[0]?.created, 2);
 * ```
 *
 * @module
 */
export { PgBossJobQueue } from "./pg_boss_job_queue.ts";
export {
  DEFAULT_QUEUE_SETTINGS,
  type JobQueueBackend,
  type PgBossJobQueueOptions,
  type QueueSettings,
} from "./options.ts";
export type { JobSchedule, ScheduleOptions } from "./schedules.ts";
export {
  DEAD_LETTER_SUFFIX,
  type DeadLetter,
  type DeadLetterListOptions,
  type DeadLetterSelection,
} from "./dead_letters.ts";
export type {
  JobQueueStats,
  JobQueueStatsOptions,
  JobQueueWindow,
  QueueCounts,
} from "./job_queue_stats.ts";
