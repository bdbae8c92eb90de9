/**
 * The pg-boss job queue adapter: {@linkcode PgBossJobQueue} implements the
 * `JobQueue` port on [pg-boss](https://github.com/timgit/pg-boss), in the
 * jobs database (`JOB_QUEUE_DATABASE_URL`), or in an embedded PGlite
 * database when no URL is set. Queues get retries with exponential backoff,
 * an expiry and a dead-letter queue; enqueue is idempotent with a key; workers
 * in the same process start a job within milliseconds of its commit.
 *
 * @example A handler that enqueues, and the worker
 * ```ts ignore
 * import { DomainEvent, EventBus, type JobQueue, On } from "@aftercommit/core";
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 *
 * class UserRegistered extends DomainEvent {
 *   constructor(readonly userId: string) {
 *     super();
 *   }
 * }
 *
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
 * await using jobs = await PgBossJobQueue.connect(
 *   Deno.env.get("JOB_QUEUE_DATABASE_URL"),
 * );
 * await jobs.work<{ userId: string }>("send-welcome-email", async (job) => {
 *   console.log("send welcome email to", job.data.userId);
 * });
 * const bus = new EventBus();
 * bus.subscribe(new Welcome(jobs));
 * await bus.publishAll([new UserRegistered("u1")]);
 * ```
 *
 * @module
 */
export {
  DEAD_LETTER_SUFFIX,
  type DeadLetter,
  type DeadLetterListOptions,
  type DeadLetterSelection,
  DEFAULT_QUEUE_SETTINGS,
  JOB_QUEUE_DATABASE_URL,
  type JobQueueBackend,
  type JobSchedule,
  PgBossJobQueue,
  type PgBossJobQueueOptions,
  type PgliteInstance,
  type QueueSettings,
  type ScheduleOptions,
} from "./pg_boss_job_queue.ts";
export type {
  JobQueueStats,
  JobQueueStatsOptions,
  JobQueueWindow,
  QueueCounts,
} from "./job_queue_stats.ts";
