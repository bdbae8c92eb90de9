import {
  assertQueueName,
  type EnqueueOptions,
  type Job,
  type JobHandler,
  type JobQueue,
  type JobRequest,
  prepareJob,
  prepareJobs,
  type WorkOptions,
} from "../application/job_queue.ts";
import { expected } from "../internal/rules.ts";

/** Where a job of an {@linkcode InMemoryJobQueue} is. */
export type InMemoryJobState = "created" | "active" | "completed" | "failed";

/** A snapshot of a job an {@linkcode InMemoryJobQueue} holds. */
export interface InMemoryJob<T = unknown>
  extends Pick<Job<T>, "id" | "name" | "data"> {
  /** The options given to `enqueue`. */
  readonly options: EnqueueOptions | undefined;
  /** `"created"` until {@linkcode InMemoryJobQueue.runJobs} runs it. */
  readonly state: InMemoryJobState;
  /** How many times it ran. */
  readonly attempts: number;
  /** What its last attempt threw, for a failed job. */
  readonly error: unknown;
}

/** One call that wrote jobs: `enqueue` (one job) or `enqueueMany`. */
export interface JobWrite {
  /** The method called. */
  readonly method: "enqueue" | "enqueueMany";
  /** The jobs it was given. */
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
  /** Only this queue's jobs. Default: every queue with a worker. */
  readonly name?: string;
  /** Run failed jobs again too, not only created ones. Default: false. */
  readonly retryFailed?: boolean;
}

// A job's data is kept as JSON text, as pg-boss keeps it (jsonb).
type StoredJob =
  & { -readonly [K in Exclude<keyof InMemoryJob, "data">]: InMemoryJob[K] }
  & { readonly json: string };
// A fresh copy of the data in each snapshot and attempt, as pg-boss gives.
const snapshot = ({ id, name, json, ...rest }: StoredJob): InMemoryJob =>
  Object.freeze({ id, name, data: JSON.parse(json), ...rest });

// A handler that keeps enqueueing jobs for itself would never let runJobs
// finish; past this many runs in one call, it throws instead.
const MAX_RUNS = 10_000;

/**
 * A {@linkcode JobQueue} in memory: it records every write, checks jobs and
 * derives keyed ids as the pg-boss adapter does, and runs jobs only when
 * {@linkcode InMemoryJobQueue.runJobs} is called. Each attempt, and each
 * snapshot, gets a fresh copy of the data as pg-boss returns it (`undefined`
 * members dropped).
 *
 * @example Enqueue twice with one key, then run the job
 * ```ts
 * import assert from "node:assert/strict";
 * import { InMemoryJobQueue } from "@aftercommit/core/testing";
 *
 * const jobs = new InMemoryJobQueue();
 * const enqueue = () => jobs.enqueue("send-email", { to: "u1" }, { key: "e1" });
 * assert.equal(await enqueue(), jobs.jobIdFor("send-email", "e1"));
 * assert.equal(await enqueue(), null); // the same key: no second job
 *
 * const sent: string[] = [];
 * await jobs.work<{ to: string }>("send-email", (job) => {
 *   sent.push(job.data.to);
 * });
 * const { completed } = await jobs.runJobs();
 * assert.deepEqual([sent, completed.length], [["u1"], 1]);
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

  /** The jobs of queue `name`, in the order they were created. */
  jobsNamed<T = unknown>(name: string): InMemoryJob<T>[] {
    return this.jobs.filter((j) => j.name === name) as InMemoryJob<T>[];
  }

  /**
   * Makes later writes reject with `error`, writing nothing, as a queue whose
   * database is down would; with no argument, writes succeed again.
   */
  failWrites(...error: [unknown?]): void {
    this.#writeError = error.length === 0 ? undefined : { error: error[0] };
  }

  /**
   * Adds a job; resolves its id, or `null` when a job with that id exists.
   * Rejects as the pg-boss adapter would, writing nothing.
   */
  async enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null> {
    const job = options === undefined
      ? { name, data }
      : { name, data, options };
    return (await this.#add("enqueue", [job]))[0]!;
  }

  /** Adds several jobs as one write, as {@linkcode InMemoryJobQueue.enqueue}. */
  enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    return this.#add("enqueueMany", jobs);
  }

  /** The id a job enqueued with `{ key }` gets: the pg-boss adapter's. */
  jobIdFor(name: string, key: string): string {
    return prepareJob({ name, data: null, options: { key } }, "derive job id")
      .id;
  }

  /**
   * Checks a job and gives it its id (in `options.id` too, without a key),
   * writing nothing: what a `BatchingJobQueue` calls.
   */
  prepare(request: JobRequest): JobRequest & { readonly id: string } {
    const { id } = prepareJob(request);
    // A job without a key carries its id, so that the write gives it that id.
    return request.options?.key === undefined
      ? { ...request, options: { ...request.options, id }, id }
      : { ...request, id };
  }

  /**
   * Registers `handler` for queue `name` (replacing an earlier one); nothing
   * runs until {@linkcode InMemoryJobQueue.runJobs}. `_options` is ignored.
   * Rejects once the queue is stopped, as the pg-boss adapter does.
   */
  work<T>(
    name: string,
    handler: JobHandler<T>,
    _options?: WorkOptions,
  ): Promise<string> {
    // A throw here rejects the promise: not Promise.try, which Node 22 lacks,
    // nor an async method, which lint refuses without an await.
    return new Promise((resolve) => {
      assertQueueName(name, "start worker");
      const action = `start worker on queue "${name}"`;
      if (typeof handler !== "function") {
        expected(action, "a handler function", handler);
      }
      if (this.#stopped) {
        throw new Error(
          `Cannot ${action}: the queue is stopped; stop() it only after the last enqueue and work, or create a new one`,
        );
      }
      this.#workers.set(name, handler as JobHandler<unknown>);
      resolve(`in-memory-worker-${++this.#workerCount}`);
    });
  }

  /**
   * Runs the created jobs whose queue has a worker (and those they enqueue),
   * oldest first, one at a time, ignoring delays; a job whose handler throws
   * fails, and runs again only with `retryFailed`.
   *
   * @throws {Error} When handlers keep enqueueing past 10,000 runs.
   */
  async runJobs(options: RunJobsOptions = {}): Promise<RunJobsResult> {
    const runnable = (job: StoredJob) =>
      (options.name ?? job.name) === job.name && this.#workers.has(job.name);
    const retry = [...this.#jobs.values()].filter((j) =>
      options.retryFailed && j.state === "failed" && runnable(j)
    );
    const completed: InMemoryJob[] = [], failed: InMemoryJob[] = [];
    for (let runs = 0;; runs++) {
      const next = this.#pending.findIndex(runnable);
      const job = retry.shift() ??
        (next === -1 ? undefined : this.#pending.splice(next, 1)[0]);
      if (job === undefined) return { completed, failed };
      if (runs === MAX_RUNS) {
        throw new Error(
          `Cannot finish running jobs: ${MAX_RUNS} runs and jobs are still being enqueued; a handler probably enqueues a job for itself`,
        );
      }
      const { id, name, json } = job;
      const controller = new AbortController();
      const { signal } = controller, handler = this.#workers.get(name)!;
      job.state = "active";
      try {
        const data = JSON.parse(json);
        await handler({ id, name, data, attempt: ++job.attempts, signal });
        Object.assign(job, { state: "completed", error: undefined });
        completed.push(snapshot(job));
      } catch (error) {
        failed.push(snapshot(Object.assign(job, { state: "failed", error })));
      } finally {
        controller.abort();
      }
    }
  }

  /** Stops the queue: later writes and `work()` reject. */
  stop(): Promise<void> {
    this.#stopped = true;
    return Promise.resolve();
  }

  // Checks `jobs` whole, records the write and stores the new jobs.
  #add(
    method: JobWrite["method"],
    jobs: readonly JobRequest[],
  ): Promise<(string | null)[]> {
    return new Promise((resolve) => {
      const prepared = method === "enqueue"
        ? [prepareJob(jobs[0])]
        : prepareJobs(jobs);
      this.#writes.push({ method, jobs: [...jobs] });
      if (this.#writeError !== undefined) throw this.#writeError.error;
      if (this.#stopped) {
        const noun = method === "enqueue" ? "job" : "jobs";
        throw new Error(
          `Cannot enqueue ${noun}: the queue is stopped; stop() it only after the last enqueue, or create a new one`,
        );
      }
      resolve(jobs.map(({ name, data, options }, i) => {
        const id = prepared[i]!.id;
        if (this.#jobs.has(id)) return null;
        const job: StoredJob = {
          id,
          name,
          json: JSON.stringify(data),
          options,
          state: "created",
          attempts: 0,
          error: undefined,
        };
        this.#jobs.set(id, job);
        this.#pending.push(job);
        return id;
      }));
    });
  }
}
