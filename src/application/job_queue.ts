/**
 * The job queue port: what handlers use to hand slow or fallible work to a
 * durable queue. Adapters (such as `@aftercommit/core/pg-boss`) implement it;
 * this module imports no driver.
 *
 * @module
 */

/** Options of {@linkcode JobQueue.enqueue}. */
export interface EnqueueOptions {
  /**
   * An idempotency key, such as an event id (plus the handler's name when
   * one event feeds several handlers into the same queue). Enqueueing twice
   * with the same key and queue name creates one job: the second call
   * returns `null` (inside a `BatchingJobQueue` batch it returns the id,
   * and still creates nothing).
   *
   * @default {undefined (every call creates a job)}
   */
  readonly key?: string;
  /**
   * The job's id, chosen by the caller: a lowercase UUID such as
   * `crypto.randomUUID()` gives. Enqueueing an id that exists creates
   * nothing and returns `null`, like a used key. Not allowed with `key`,
   * which derives the id itself. `BatchingJobQueue` sets it, so
   * that a buffered enqueue can return the id before the job is written.
   *
   * @default {undefined (a key-derived id, or a fresh UUID)}
   */
  readonly id?: string;
  /**
   * When the job may start: a number of seconds from now (finite, 0 or
   * more), or a `Date` that is not in the past. A negative or non-finite
   * number, an invalid `Date` or one in the past is a `RangeError`.
   *
   * @default {undefined (at once)}
   */
  readonly startAfter?: number | Date;
  /**
   * Seconds to wait before the job may start: the same as a number
   * `startAfter` (give one of the two).
   *
   * @default {0}
   */
  readonly startAfterSeconds?: number;
  /**
   * An integer; higher runs first.
   *
   * @default {0}
   */
  readonly priority?: number;
}

/** One job to enqueue with {@linkcode JobQueue.enqueueMany}. */
export interface JobRequest<T = unknown> {
  /** The queue name. */
  readonly name: string;
  /** JSON-serialisable data for the handler. */
  readonly data: T;
  /** Idempotency key and scheduling. */
  readonly options?: EnqueueOptions;
}

/** What a job handler receives. */
export interface Job<T = unknown> {
  /** The job's id (a UUID). */
  readonly id: string;
  /** The queue name. */
  readonly name: string;
  /** The data given to `enqueue`. */
  readonly data: T;
  /** 1 for the first try, 2 for the first retry, and so on. */
  readonly attempt: number;
  /**
   * Aborted when the attempt expires or the queue stops without waiting for
   * it (and, at the latest, once the attempt is over).
   */
  readonly signal: AbortSignal;
}

/** A function that does the work of one job; throwing fails the attempt. */
export type JobHandler<T = unknown> = (job: Job<T>) => Promise<void> | void;

/** Options of {@linkcode JobQueue.work}. */
export interface WorkOptions {
  /**
   * How many fetch loops this process runs for the queue. Each fetches
   * `batchSize` jobs at a time, so up to `concurrency × batchSize` jobs of
   * this queue run at once (10 with the defaults). Set `batchSize` to 1
   * for one job at a time, in queue order.
   *
   * @default {1}
   */
  readonly concurrency?: number;
  /**
   * How many jobs one fetch takes. The jobs of a batch run concurrently and
   * each succeeds or fails on its own; larger batches raise throughput, and
   * a loop fetches again once its whole batch is done.
   *
   * @default {10}
   */
  readonly batchSize?: number;
  /**
   * How often an idle worker looks for jobs that no wake-up announced, such
   * as retries that waited out their delay. New jobs wake workers at once.
   *
   * @default {2}
   */
  readonly pollingIntervalSeconds?: number;
}

/**
 * A durable job queue. Implemented by adapters; the application layer only
 * knows this interface.
 *
 * @example A handler that enqueues a job
 * ```ts
 * import { type JobQueue, On } from "@aftercommit/core";
 *
 * class UserRegistered {
 *   constructor(readonly eventId: string, readonly userId: string) {}
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
 * ```
 */
export interface JobQueue {
  /**
   * Adds a job.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param data JSON-serialisable data.
   * @param options Idempotency key and scheduling.
   * @returns The job id, or `null` when a job with the same key exists.
   * @throws {TypeError} When the name, the data or the options are invalid;
   * nothing is written then.
   */
  enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null>;
  /**
   * Adds several jobs in one round trip per queue.
   *
   * @param jobs The jobs.
   * @returns The ids, in order, `null` where the key was already used.
   * @throws {TypeError} When any request is invalid; nothing is written then.
   */
  enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]>;
  /**
   * The id that `enqueue(name, data, { key })` gives a job, the same in
   * every process. Optional: only a queue that has it (and
   * {@linkcode JobQueue.validate}) lets `BatchingJobQueue` buffer its jobs;
   * without them every enqueue goes straight through.
   *
   * @param name The queue name.
   * @param key The idempotency key.
   * @returns The job id.
   * @throws {TypeError} When the name or the key is invalid.
   */
  jobIdFor?(name: string, key: string): string;
  /**
   * Checks a job as {@linkcode JobQueue.enqueue} does, writing nothing.
   * Optional: a queue that has it (and {@linkcode JobQueue.jobIdFor}) lets
   * `BatchingJobQueue` reject bad input at the `enqueue` call of
   * a buffered job.
   *
   * @param name The queue name.
   * @param data The data.
   * @param options The options.
   * @throws {TypeError} When `enqueue` would throw one for these arguments
   * (a `RangeError` for numbers out of range).
   */
  validate?(name: string, data: unknown, options?: EnqueueOptions): void;
  /**
   * Checks a job as {@linkcode JobQueue.enqueue} does and gives it its id,
   * writing nothing. The result goes to {@linkcode JobQueue.enqueueMany}
   * as it is, which then neither checks it again nor derives its id again.
   * Optional: `BatchingJobQueue` uses it when present (else
   * {@linkcode JobQueue.validate} and {@linkcode JobQueue.jobIdFor}).
   *
   * @param request The job.
   * @returns The request to give `enqueueMany`, with the id the job will
   * have (the key-derived id, the given id, or a fresh UUID).
   * @throws {TypeError} When `enqueue` would throw one for this request
   * (a `RangeError` for numbers out of range).
   */
  prepare?(request: JobRequest): JobRequest & { readonly id: string };
  /**
   * Starts running `handler` for jobs of queue `name` in this process.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param handler The work; throwing fails the attempt.
   * @param options Concurrency, batch size and polling.
   * @returns The worker's id.
   * @throws {TypeError} When the name, the handler or the options are invalid.
   */
  work<T>(
    name: string,
    handler: JobHandler<T>,
    options?: WorkOptions,
  ): Promise<string>;
  /**
   * Stops fetching jobs, lets running handlers finish, and closes the
   * connection.
   *
   * @returns When every running handler has finished.
   */
  stop(): Promise<void>;
}
