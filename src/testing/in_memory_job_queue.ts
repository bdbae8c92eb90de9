/**
 * A {@linkcode JobQueue} in memory, for tests.
 *
 * @module
 */
import type {
  EnqueueOptions,
  Job,
  JobHandler,
  JobQueue,
  JobRequest,
  WorkOptions,
} from "../application/job_queue.ts";
import { describe } from "../internal/describe.ts";
import {
  assertQueueName,
  prepareJob,
  prepareJobs,
} from "../application/job_queue.ts";

/** Where a job of an {@linkcode InMemoryJobQueue} is. */
export type InMemoryJobState = "created" | "active" | "completed" | "failed";

/**
 * A job an {@linkcode InMemoryJobQueue} holds (a snapshot).
 *
 * @typeParam T The data's type.
 */
export interface InMemoryJob<T = unknown> {
  /** The job id: the pg-boss adapter's id for a key, the given id, or a UUID. */
  readonly id: string;
  /** The queue name. */
  readonly name: string;
  /** The data given to `enqueue`. */
  readonly data: T;
  /** The options given to `enqueue`, if any. */
  readonly options: EnqueueOptions | undefined;
  /** `"created"` until {@linkcode InMemoryJobQueue.runJobs} runs it. */
  readonly state: InMemoryJobState;
  /** How many times it was run. */
  readonly attempts: number;
  /** What its last attempt threw, for a failed job. */
  readonly error: unknown;
}

/** One call that wrote jobs: `enqueue` (one job) or `enqueueMany`. */
export interface JobWrite {
  /** The method called. */
  readonly method: "enqueue" | "enqueueMany";
  /** The jobs it was given, in order. */
  readonly jobs: readonly JobRequest[];
}

/** What {@linkcode InMemoryJobQueue.runJobs} did. */
export interface RunJobsResult {
  /** The jobs that ran and succeeded, in the order they ran. */
  readonly completed: readonly InMemoryJob[];
  /** The jobs whose handler threw, in the order they ran. */
  readonly failed: readonly InMemoryJob[];
}

/** Options of {@linkcode InMemoryJobQueue.runJobs}. */
export interface RunJobsOptions {
  /**
   * Run only the jobs of this queue.
   *
   * @default {undefined (every queue with a worker)}
   */
  readonly name?: string;
  /**
   * Run failed jobs again too (a retry), not only created ones.
   *
   * @default {false}
   */
  readonly retryFailed?: boolean;
}

interface StoredJob {
  readonly id: string;
  readonly name: string;
  readonly data: unknown;
  readonly options: EnqueueOptions | undefined;
  state: InMemoryJobState;
  attempts: number;
  error: unknown;
}

// A handler that keeps enqueueing jobs for itself would never let runJobs
// finish; past this many runs in one call, it throws instead.
const MAX_RUNS = 10_000;

/**
 * A {@linkcode JobQueue} that keeps jobs in memory: it records every write,
 * checks each job with the rules every queue shares (queue name, JSON data,
 * key or id, priority, delay), gives keyed jobs the pg-boss adapter's ids
 * (the same key twice creates one job; the second `enqueue` answers
 * `null`), and runs jobs only when asked, with
 * {@linkcode InMemoryJobQueue.runJobs}. It has `prepare`, so a
 * `BatchingJobQueue` around it buffers as it does around pg-boss.
 *
 * @example A handler that enqueues, and the job it enqueued run
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus, type JobQueue, On } from "@aftercommit/core";
 * import { InMemoryJobQueue } from "@aftercommit/core/testing";
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
 * const jobs = new InMemoryJobQueue();
 * const bus = new EventBus();
 * bus.subscribe(new Welcome(jobs));
 * await bus.publish(new UserRegistered("e1", "u1"));
 * await bus.publish(new UserRegistered("e1", "u1")); // redelivered: no second job
 *
 * assert.deepEqual(jobs.jobs.map((j) => [j.name, j.data, j.state]), [
 *   ["send-welcome-email", { userId: "u1" }, "created"],
 * ]);
 * assert.equal(jobs.jobs[0]?.id, jobs.jobIdFor("send-welcome-email", "e1"));
 *
 * const sent: string[] = [];
 * await jobs.work<{ userId: string }>("send-welcome-email", (job) => {
 *   sent.push(job.data.userId);
 * });
 * const { completed, failed } = await jobs.runJobs();
 * assert.deepEqual(sent, ["u1"]);
 * assert.equal(completed.length, 1);
 * assert.equal(failed.length, 0);
 * ```
 */
export class InMemoryJobQueue implements JobQueue {
  readonly #jobs = new Map<string, StoredJob>();
  // The created jobs, oldest first: runJobs takes from here.
  readonly #pending: StoredJob[] = [];
  readonly #workers = new Map<string, JobHandler<unknown>>();
  readonly #writes: JobWrite[] = [];
  #writeError: { readonly error: unknown } | undefined;
  #stopped = false;
  #workerCount = 0;

  /** Every job, in the order they were created (snapshots). */
  get jobs(): readonly InMemoryJob[] {
    return [...this.#jobs.values()].map(snapshot);
  }

  /** Every call that wrote jobs (or tried to), in order. */
  get writes(): readonly JobWrite[] {
    return [...this.#writes];
  }

  /** Whether {@linkcode InMemoryJobQueue.stop} was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * The jobs of one queue (snapshots).
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @returns The jobs, in the order they were created.
   */
  jobsNamed<T = unknown>(name: string): InMemoryJob<T>[] {
    return this.jobs.filter((j) => j.name === name) as InMemoryJob<T>[];
  }

  /**
   * Makes every later write (`enqueue`, `enqueueMany`) reject with `error`,
   * writing nothing, as a queue whose database is down would; call it with
   * no argument to make writes succeed again.
   *
   * @param error The error writes reject with.
   */
  failWrites(...error: [unknown?]): void {
    this.#writeError = error.length === 0 ? undefined : { error: error[0] };
  }

  /**
   * Adds a job.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param data JSON-serialisable data.
   * @param options Idempotency key or id, and scheduling.
   * @returns The job id, or `null` when a job with the same id exists.
   * @throws {TypeError} When the pg-boss adapter would throw one; nothing
   * is written then (a `RangeError` for numbers out of range).
   */
  enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null> {
    try {
      this.prepare(
        options === undefined ? { name, data } : { name, data, options },
      );
      const job = options === undefined
        ? { name, data }
        : { name, data, options };
      this.#writes.push({ method: "enqueue", jobs: [job] });
      this.#assertWritable("enqueue job");
      return Promise.resolve(this.#store(job));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Adds several jobs, as one write.
   *
   * @param jobs The jobs.
   * @returns The ids, in order, `null` where the id already existed.
   * @throws {TypeError} When any request is invalid; nothing is written then.
   */
  enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    try {
      prepareJobs(jobs);
      this.#writes.push({ method: "enqueueMany", jobs: [...jobs] });
      this.#assertWritable("enqueue jobs");
      return Promise.resolve(jobs.map((job) => this.#store(job)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The id a job enqueued with `{ key }` gets: the pg-boss adapter's.
   *
   * @param name The queue name.
   * @param key The idempotency key.
   * @returns The job id (a UUID).
   * @throws {TypeError} When the name or the key is invalid.
   */
  jobIdFor(name: string, key: string): string {
    return prepareJob({ name, data: null, options: { key } }, "derive job id")
      .id;
  }

  /**
   * Checks a job as {@linkcode InMemoryJobQueue.enqueue} does and gives it
   * its id, writing nothing: what a `BatchingJobQueue` calls.
   *
   * @param request The job.
   * @returns The request with its id (in `options.id` too, without a key).
   * @throws {TypeError} When the job is invalid (a `RangeError` for numbers
   * out of range).
   */
  prepare(request: JobRequest): JobRequest & { readonly id: string } {
    const { id } = prepareJob(request);
    // A job without a key carries its id, so that the write gives it that id.
    return request.options?.key === undefined
      ? { ...request, options: { ...request.options, id }, id }
      : { ...request, id };
  }

  /**
   * Registers `handler` for the jobs of queue `name`. Nothing runs until
   * {@linkcode InMemoryJobQueue.runJobs}; a second `work` for the same
   * queue replaces the handler.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param handler The work; throwing fails the job.
   * @param _options Ignored: jobs run one at a time.
   * @returns A worker id.
   * @throws {TypeError} When the name is invalid or the handler is not a
   * function.
   */
  work<T>(
    name: string,
    handler: JobHandler<T>,
    _options?: WorkOptions,
  ): Promise<string> {
    try {
      assertQueueName(name, "start worker");
      if (typeof handler !== "function") {
        throw new TypeError(
          `Cannot start worker on queue "${name}": expected a handler function, received ${
            describe(handler)
          }`,
        );
      }
      this.#workers.set(name, handler as JobHandler<unknown>);
      return Promise.resolve(`in-memory-worker-${++this.#workerCount}`);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs the created jobs whose queue has a worker, one at a time, oldest
   * first, including jobs those handlers enqueue, until none is left. A
   * delay (`startAfterSeconds`) is not waited for. A handler that throws
   * fails its job (kept with its error); it is not retried unless asked.
   * Each job gets a signal that aborts when its attempt is over.
   *
   * @param options Only one queue's jobs; retry failed jobs.
   * @returns The jobs that completed and failed in this call.
   * @throws {Error} When handlers keep enqueueing jobs past 10,000 runs.
   */
  async runJobs(options: RunJobsOptions = {}): Promise<RunJobsResult> {
    const completed: InMemoryJob[] = [];
    const failed: InMemoryJob[] = [];
    const retry = options.retryFailed
      ? [...this.#jobs.values()].filter((j) =>
        j.state === "failed" &&
        (options.name === undefined || j.name === options.name) &&
        this.#workers.has(j.name)
      )
      : [];
    for (let runs = 0;; runs++) {
      const job = retry.shift() ?? this.#nextJob(options.name);
      if (job === undefined) break;
      if (runs === MAX_RUNS) {
        throw new Error(
          `Cannot finish running jobs: ${MAX_RUNS} runs and jobs are still being enqueued; a handler probably enqueues a job for itself`,
        );
      }
      const handler = this.#workers.get(job.name)!;
      const controller = new AbortController();
      job.state = "active";
      job.attempts++;
      const attempt: Job = {
        id: job.id,
        name: job.name,
        data: job.data,
        attempt: job.attempts,
        signal: controller.signal,
      };
      try {
        await handler(attempt);
        job.state = "completed";
        job.error = undefined;
        completed.push(snapshot(job));
      } catch (error) {
        job.state = "failed";
        job.error = error;
        failed.push(snapshot(job));
      } finally {
        controller.abort();
      }
    }
    return { completed, failed };
  }

  /**
   * Stops the queue: later writes reject.
   *
   * @returns A resolved promise.
   */
  stop(): Promise<void> {
    this.#stopped = true;
    return Promise.resolve();
  }

  // Takes the oldest created job this run may start off the pending list.
  #nextJob(name: string | undefined): StoredJob | undefined {
    const i = this.#pending.findIndex((job) =>
      (name === undefined || job.name === name) && this.#workers.has(job.name)
    );
    if (i === -1) return undefined;
    return this.#pending.splice(i, 1)[0];
  }

  #assertWritable(action: string): void {
    if (this.#writeError !== undefined) throw this.#writeError.error;
    if (this.#stopped) {
      throw new Error(`Cannot ${action}: the queue is stopped`);
    }
  }

  #store(job: JobRequest): string | null {
    const { name, data, options } = job;
    const id = prepareJob(job).id;
    if (this.#jobs.has(id)) return null;
    const stored: StoredJob = {
      id,
      name,
      data: structuredClone(data),
      options,
      state: "created",
      attempts: 0,
      error: undefined,
    };
    this.#jobs.set(id, stored);
    this.#pending.push(stored);
    return id;
  }
}

function snapshot(job: StoredJob): InMemoryJob {
  return Object.freeze({ ...job });
}
