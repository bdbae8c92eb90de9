/**
 * {@linkcode BatchingJobQueue}: buffers the jobs that handlers enqueue during
 * one `publishAll` and writes them with one `enqueueMany`, one round trip.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import { describe } from "../internal/describe.ts";
import { loggableError } from "../internal/loggable_error.ts";
import { assertPublishAll } from "../internal/rules.ts";
import type {
  EnqueueOptions,
  JobHandler,
  JobQueue,
  JobRequest,
  WorkOptions,
} from "./job_queue.ts";
import type { EventPublisher } from "./unit_of_work.ts";
import type { PublishOptions } from "./event_bus.ts";

const logger = getLogger(["aftercommit", "jobs"]);

interface Buffer {
  readonly requests: JobRequest[];
  // Set once the batch's work has returned: an enqueue that still runs in
  // its async context (a timer, an un-awaited promise) goes straight through.
  closed: boolean;
}

/**
 * A {@linkcode JobQueue} that batches: inside {@linkcode BatchingJobQueue.batch}
 * (or a publish through {@linkcode BatchingJobQueue.publisher}), every
 * `enqueue` is checked at once, answered at once with the id the job will
 * have, and buffered; when the batch's work has finished, the buffer is
 * written with one `enqueueMany` on the wrapped queue, in call order. A bus
 * awaits its handlers one by one, so without this each handler's enqueue
 * is a round trip of its own.
 *
 * - Outside a batch, every method goes straight to the wrapped queue.
 * - A buffered enqueue resolves to the id the job will have (the wrapped
 *   queue's `prepare` gives it: key-derived for a keyed job, else a UUID).
 * - Inside a batch the `null` answer ("this key was already used") is not
 *   available: a buffered enqueue answers with the id even when a job with
 *   that key exists. The duplicate is still not created.
 * - Bad input (an invalid queue name, data that is not JSON…) throws at the
 *   `enqueue` call, through the wrapped queue's `prepare`, before anything
 *   is written.
 * - If writing the buffer fails, the batch (and so `publishAll`, and so a
 *   Unit of Work's `run`, as `PublishAfterCommitError`) throws that error.
 * - A batch inside a batch joins the outer one; concurrent batches (two
 *   requests publishing at once) have separate buffers.
 * - Each job is checked and given its id once, by the wrapped queue's
 *   `prepare`; the write repeats neither. A wrapped queue without
 *   `prepare` (it is optional in the port) cannot answer for a job it has
 *   not written: then every enqueue goes straight through.
 *
 * Give the handlers this queue, not the wrapped one: only enqueues made
 * through it are buffered.
 *
 * @example One round trip for the jobs of one publish
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   BatchingJobQueue,
 *   type EnqueueOptions,
 *   EventBus,
 *   type JobQueue,
 *   type JobRequest,
 *   On,
 * } from "@aftercommit/core";
 *
 * // An in-memory queue that counts its writes.
 * class MemoryQueue implements JobQueue {
 *   writes = 0;
 *   jobs = new Map<string, unknown>();
 *   enqueue(name: string, data: unknown, options: EnqueueOptions = {}) {
 *     return this.enqueueMany([{ name, data, options }]).then(([id]) => id!);
 *   }
 *   enqueueMany(requests: readonly JobRequest[]) {
 *     this.writes++;
 *     return Promise.resolve(requests.map((request) => {
 *       const { id, data } = this.prepare(request);
 *       if (this.jobs.has(id)) return null;
 *       this.jobs.set(id, data);
 *       return id;
 *     }));
 *   }
 *   prepare(request: JobRequest) {
 *     if (request.name === "") throw new TypeError("Cannot enqueue job: empty name");
 *     const key = request.options?.key;
 *     const id = key === undefined
 *       ? request.options?.id ?? crypto.randomUUID()
 *       : `${request.name}:${key}`;
 *     return { ...request, id };
 *   }
 *   work() {
 *     return Promise.resolve("worker");
 *   }
 *   stop() {
 *     return Promise.resolve();
 *   }
 * }
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
 *
 * const memory = new MemoryQueue();
 * const jobs = new BatchingJobQueue(memory);
 * const bus = new EventBus();
 * bus.subscribe(new Welcome(jobs));
 * const publisher = jobs.publisher(bus); // give it to the Unit of Work as `bus`
 * await publisher.publishAll([
 *   new UserRegistered("e1", "u1"),
 *   new UserRegistered("e2", "u2"),
 *   new UserRegistered("e3", "u3"),
 * ]);
 * assert.deepEqual([memory.jobs.size, memory.writes], [3, 1]);
 * ```
 */
export class BatchingJobQueue implements JobQueue {
  readonly #inner: JobQueue;
  readonly #buffers = new AsyncLocalStorage<Buffer>();
  // Whether the wrapped queue can check a job and name its id before
  // writing it: only then are enqueues buffered.
  readonly #canAnswer: boolean;

  /**
   * Wraps `inner`. The wrapper holds no connection of its own:
   * {@linkcode BatchingJobQueue.stop} stops `inner`.
   *
   * @param inner The queue that writes the jobs, such as a `PgBossJobQueue`.
   * @throws {TypeError} When `inner` does not look like a {@linkcode JobQueue}.
   */
  constructor(inner: JobQueue) {
    const like = inner as Partial<JobQueue> | null | undefined;
    if (
      typeof like !== "object" || like === null ||
      typeof like.enqueue !== "function" ||
      typeof like.enqueueMany !== "function" ||
      typeof like.work !== "function" || typeof like.stop !== "function"
    ) {
      throw new TypeError(
        `Cannot create batching job queue: expected a JobQueue (with enqueue, enqueueMany, work and stop), received ${
          describe(inner)
        }`,
      );
    }
    this.#inner = inner;
    this.#canAnswer = typeof inner.prepare === "function";
  }

  /**
   * Whether this call runs inside a batch of this queue, whose enqueues are
   * buffered.
   */
  get batching(): boolean {
    const buffer = this.#buffers.getStore();
    return buffer !== undefined && !buffer.closed;
  }

  /**
   * Runs `fn`; every enqueue made through this queue while it runs is
   * buffered and written with one `enqueueMany` once it has returned (or
   * thrown: the jobs it enqueued before the failure are written too, as
   * they would have been without batching). Inside a batch, `fn` joins it
   * and nothing is written until the outer batch ends.
   *
   * @typeParam T What `fn` returns.
   * @param fn The work, such as publishing events.
   * @returns What `fn` returned, once the buffered jobs are written.
   * @throws {TypeError} When `fn` is not a function.
   * @throws The error of `fn`, after the buffered jobs are written.
   * @throws The error of the wrapped queue's `enqueueMany`, when writing the
   * buffer fails.
   * @throws {SuppressedError} When both fail: `error` is the write's error,
   * `suppressed` the error of `fn`.
   *
   * @example Batch the enqueues of any piece of code
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue, type JobQueue } from "@aftercommit/core";
   *
   * let roundTrips = 0;
   * const inner: JobQueue = {
   *   enqueue: () => Promise.resolve(crypto.randomUUID()),
   *   enqueueMany: (jobs) => {
   *     roundTrips++;
   *     return Promise.resolve(jobs.map(() => crypto.randomUUID()));
   *   },
   *   prepare: (job) => ({ ...job, id: crypto.randomUUID() }),
   *   work: () => Promise.resolve("worker"),
   *   stop: () => Promise.resolve(),
   * };
   * const jobs = new BatchingJobQueue(inner);
   * await jobs.batch(async () => {
   *   for (let i = 0; i < 100; i++) {
   *     await jobs.enqueue("resize-image", { n: i }, { key: `image-${i}` });
   *   }
   * });
   * assert.deepEqual(roundTrips, 1);
   * ```
   */
  async batch<T>(fn: () => T | Promise<T>): Promise<T> {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot run batch: expected a function, received ${describe(fn)}`,
      );
    }
    if (this.batching) return await fn();
    const buffer: Buffer = { requests: [], closed: false };
    let result: T;
    try {
      result = await this.#buffers.run(buffer, fn);
    } catch (error) {
      buffer.closed = true;
      try {
        await this.#flush(buffer);
      } catch (flushError) {
        throw new SuppressedError(
          flushError,
          error,
          "Writing the buffered jobs failed after the batch itself failed",
        );
      }
      throw error;
    }
    buffer.closed = true;
    await this.#flush(buffer);
    return result;
  }

  /**
   * Wraps `bus` so that each `publishAll` is a {@linkcode BatchingJobQueue.batch}:
   * the jobs its handlers enqueue through this queue are written in one
   * round trip after the handlers have finished. Pass the result to a Unit
   * of Work as its `bus` option.
   *
   * @param bus The bus, such as an `EventBus` or `defaultBus`.
   * @returns A publisher whose `publishAll` publishes on `bus`, then writes
   * the buffered jobs.
   * @throws {TypeError} When `bus` has no `publishAll` method.
   *
   * @example Give a Unit of Work a batching publisher
   * ```ts
   * import {
   *   BatchingJobQueue,
   *   EventBus,
   *   type JobQueue,
   *   type UnitOfWorkOptions,
   * } from "@aftercommit/core";
   *
   * const inner: JobQueue = {
   *   enqueue: () => Promise.resolve(crypto.randomUUID()),
   *   enqueueMany: (jobs) => Promise.resolve(jobs.map(() => crypto.randomUUID())),
   *   work: () => Promise.resolve("worker"),
   *   stop: () => Promise.resolve(),
   * };
   * const jobs = new BatchingJobQueue(inner);
   * const options: UnitOfWorkOptions = { bus: jobs.publisher(new EventBus()) };
   * await options.bus!.publishAll([]);
   * ```
   */
  publisher(bus: EventPublisher): EventPublisher {
    assertPublishAll(
      bus,
      "bus",
      "create batching publisher",
      "pass an EventBus",
    );
    return {
      publishAll: (
        events: Iterable<object>,
        options?: PublishOptions,
      ): Promise<void> => this.batch(() => bus.publishAll(events, options)),
      batch: <T>(work: () => Promise<T>): Promise<T> => this.batch(work),
    };
  }

  /**
   * Adds a job. Inside a batch: checks it, buffers it, and resolves at once
   * with the id it will have. Outside: the wrapped queue's `enqueue`.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param data JSON-serialisable data.
   * @param options Idempotency key or id, and scheduling.
   * @returns The job id; outside a batch, `null` when a job with the same
   * key exists. Inside a batch, always the id (a duplicate is still not
   * created when the buffer is written).
   * @throws {TypeError} When the name, the data or the options are invalid;
   * nothing is buffered or written then.
   *
   * @example Enqueue outside a batch goes straight through
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue, type JobQueue } from "@aftercommit/core";
   *
   * const inner: JobQueue = {
   *   enqueue: () => Promise.resolve("job-1"),
   *   enqueueMany: (jobs) => Promise.resolve(jobs.map(() => null)),
   *   work: () => Promise.resolve("worker"),
   *   stop: () => Promise.resolve(),
   * };
   * const jobs = new BatchingJobQueue(inner);
   * assert.deepEqual(await jobs.enqueue("send-welcome-email", { userId: "u1" }), "job-1");
   * ```
   */
  enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null> {
    const buffer = this.#openBuffer();
    if (buffer === undefined) {
      return this.#inner.enqueue(name, data, options);
    }
    try {
      const request = this.#prepare(
        options === undefined ? { name, data } : { name, data, options },
      );
      buffer.requests.push(request);
      return Promise.resolve(request.id);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Adds several jobs. Inside a batch: checks them all, then buffers them,
   * and resolves at once with their ids. Outside: the wrapped queue's
   * `enqueueMany`.
   *
   * @param jobs The jobs.
   * @returns The ids, in order; outside a batch, `null` where the key was
   * already used.
   * @throws {TypeError} When any request is invalid; nothing is buffered or
   * written then.
   *
   * @example Enqueue several jobs inside a batch
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue, type JobQueue } from "@aftercommit/core";
   *
   * const written: unknown[] = [];
   * const inner: JobQueue = {
   *   enqueue: () => Promise.resolve(crypto.randomUUID()),
   *   enqueueMany: (jobs) => {
   *     written.push(...jobs.map((job) => job.data));
   *     return Promise.resolve(jobs.map(() => crypto.randomUUID()));
   *   },
   *   prepare: (job) => ({ ...job, id: crypto.randomUUID() }),
   *   work: () => Promise.resolve("worker"),
   *   stop: () => Promise.resolve(),
   * };
   * const jobs = new BatchingJobQueue(inner);
   * await jobs.batch(async () => {
   *   await jobs.enqueueMany([{ name: "a", data: 1 }, { name: "b", data: 2 }]);
   *   await jobs.enqueue("c", 3);
   * });
   * assert.deepEqual(written, [1, 2, 3]);
   * ```
   */
  enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    const buffer = this.#openBuffer();
    if (buffer === undefined || !Array.isArray(jobs)) {
      return this.#inner.enqueueMany(jobs);
    }
    try {
      const prepared = jobs.map((job) => this.#prepare(job));
      for (const request of prepared) buffer.requests.push(request);
      return Promise.resolve(prepared.map(({ id }) => id));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The wrapped queue's `work`: workers are not batched.
   *
   * @typeParam T The data's type.
   * @param name The queue name.
   * @param handler The work; throwing fails the attempt.
   * @param options Concurrency, batch size and polling.
   * @returns The worker's id.
   * @throws {TypeError} As the wrapped queue's `work`.
   */
  work<T>(
    name: string,
    handler: JobHandler<T>,
    options?: WorkOptions,
  ): Promise<string> {
    return this.#inner.work(name, handler, options);
  }

  /**
   * Stops the wrapped queue. Batches still running write their buffers
   * after it, and fail if it no longer accepts jobs.
   *
   * @returns When the wrapped queue has stopped.
   */
  stop(): Promise<void> {
    return this.#inner.stop();
  }

  // The buffer of the batch this call runs in, or undefined when the call
  // goes straight through: no batch, a batch already over, or a wrapped
  // queue that cannot answer for a job before writing it.
  #openBuffer(): Buffer | undefined {
    const buffer = this.#buffers.getStore();
    if (buffer === undefined || buffer.closed) return undefined;
    return this.#canAnswer ? buffer : undefined;
  }

  // Checks one request through the wrapped queue and gives it its id, once:
  // enqueueMany then takes the result as it is.
  #prepare(job: JobRequest): JobRequest & { readonly id: string } {
    if (typeof job !== "object" || job === null) {
      throw new TypeError(
        `Cannot enqueue job: expected a { name, data, options } request, received ${
          describe(job)
        }`,
      );
    }
    return this.#inner.prepare!(job);
  }

  async #flush(buffer: Buffer): Promise<void> {
    const count = buffer.requests.length;
    if (count === 0) return;
    let ids: (string | null)[];
    try {
      ids = await this.#inner.enqueueMany(buffer.requests);
    } catch (error) {
      logger.error("Could not write {jobCount} buffered jobs: {error}", {
        jobCount: count,
        error: loggableError(error),
      });
      throw error;
    }
    let created = 0;
    for (const id of ids) if (id !== null) created++;
    logger.debug(
      "Wrote {jobCount} buffered jobs in one enqueueMany: {createdCount} created, {existingCount} already existed",
      {
        jobCount: count,
        createdCount: created,
        existingCount: count - created,
      },
    );
  }
}
