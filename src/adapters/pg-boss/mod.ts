/**
 * The pg-boss job queue adapter: {@linkcode PgBossJobQueue} implements the
 * `JobQueue` port on [pg-boss](https://github.com/timgit/pg-boss), on a
 * PostgreSQL URL or a PGlite instance, with retries, dead letters and
 * idempotent enqueue by key.
 *
 * @example Handlers enqueue through a batching publisher: one round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { PGlite } from "@electric-sql/pglite";
 * import { BatchingJobQueue, EventBus, type JobQueue, On } from "@aftercommit/core";
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 *
 * class UserRegistered {
 *   constructor(readonly eventId: string, readonly userId: string) {}
 * }
 * class Welcome {
 *   constructor(private readonly jobs: JobQueue) {}
 *   @On(UserRegistered)
 *   async enqueue(e: UserRegistered): Promise<void> {
 *     await this.jobs.enqueue("send-welcome-email", { userId: e.userId }, {
 *       key: e.eventId,
 *     });
 *   }
 * }
 *
 * await using pglite = await PGlite.create();
 * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
 * const batching = new BatchingJobQueue(jobs);
 * const bus = new EventBus();
 * bus.subscribe(new Welcome(batching));
 * await batching.publisher(bus).publishAll([
 *   new UserRegistered("e1", "u1"),
 *   new UserRegistered("e2", "u2"),
 * ]);
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
