/**
 * {@linkcode BatchingJobQueue}: buffers the jobs that handlers enqueue during
 * one `publishAll` and writes them with one `enqueueMany`, one round trip.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import { loggableError } from "../internal/loggable_error.ts";
import { assertPublishAll, expected } from "../internal/rules.ts";
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
 * `enqueue` is checked by the wrapped queue's `prepare`, answered at once
 * with the id the job will have, and buffered; when the batch ends, the
 * buffer is written with one `enqueueMany`, in call order. A bus awaits its
 * handlers one by one, so without this each enqueue is a round trip.
 *
 * Inside a batch an enqueue answers with the id even when its key was
 * already used (the duplicate is still not created); bad input throws at
 * the call; a failed write fails the batch (and so a Unit of Work's `run`,
 * as `PublishAfterCommitError`). Nested batches join the outer one. Outside
 * a batch, or when the wrapped queue has no `prepare`, every call goes
 * straight through. Give the handlers this queue, not the wrapped one.
 *
 * @example One round trip for the jobs of one publish
 * ```ts
 * import assert from "node:assert/strict";
 * import { BatchingJobQueue, EventBus, type JobQueue, On } from "@aftercommit/core";
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
 * const memory = new InMemoryJobQueue();
 * const jobs = new BatchingJobQueue(memory);
 * const bus = new EventBus();
 * bus.subscribe(new Welcome(jobs));
 * const publisher = jobs.publisher(bus); // give it to the Unit of Work as `bus`
 * await publisher.publishAll([
 *   new UserRegistered("e1", "u1"),
 *   new UserRegistered("e2", "u2"),
 *   new UserRegistered("e3", "u3"),
 * ]);
 * assert.deepEqual([memory.jobs.length, memory.writes.length], [3, 1]);
 * ```
 */
export class BatchingJobQueue implements JobQueue {
  readonly #inner: JobQueue;
  readonly #buffers = new AsyncLocalStorage<Buffer>();
  // Only a queue that can check a job and name its id before writing it
  // can have its enqueues buffered.
  readonly #canAnswer: boolean;

  /**
   * Wraps `inner`, the queue that writes the jobs (such as a
   * `PgBossJobQueue`); {@linkcode BatchingJobQueue.stop} stops it.
   *
   * @throws {TypeError} When `inner` does not look like a {@linkcode JobQueue}.
   */
  constructor(inner: JobQueue) {
    const like = inner as Partial<JobQueue> | null;
    const methods = ["enqueue", "enqueueMany", "work", "stop"] as const;
    if (
      typeof like !== "object" ||
      methods.some((method) => typeof like?.[method] !== "function")
    ) {
      expected(
        "create batching job queue",
        "a JobQueue (with enqueue, enqueueMany, work and stop)",
        inner,
      );
    }
    this.#inner = inner;
    this.#canAnswer = typeof inner.prepare === "function";
  }

  /** Whether this call runs inside a batch of this queue. */
  get batching(): boolean {
    const buffer = this.#buffers.getStore();
    return buffer !== undefined && !buffer.closed;
  }

  /**
   * Runs `fn` and writes the jobs enqueued through this queue meanwhile with
   * one `enqueueMany` once it has returned, or thrown (the jobs enqueued
   * before the failure are written, as without batching). Inside a batch,
   * `fn` joins it.
   *
   * @returns What `fn` returned, once the buffered jobs are written.
   * @throws {TypeError} When `fn` is not a function.
   * @throws The error of `fn` or of the write; a `SuppressedError` when
   * both fail (`error` is the write's, `suppressed` that of `fn`).
   *
   * @example Batch the enqueues of any piece of code
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue } from "@aftercommit/core";
   * import { InMemoryJobQueue } from "@aftercommit/core/testing";
   *
   * const memory = new InMemoryJobQueue();
   * const jobs = new BatchingJobQueue(memory);
   * await jobs.batch(async () => {
   *   for (let i = 0; i < 100; i++) {
   *     await jobs.enqueue("resize-image", { n: i }, { key: `image-${i}` });
   *   }
   * });
   * assert.equal(memory.writes.length, 1);
   * ```
   */
  async batch<T>(fn: () => T | Promise<T>): Promise<T> {
    if (typeof fn !== "function") expected("run batch", "a function", fn);
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
   * Wraps `bus` so that each `publishAll` is a {@linkcode BatchingJobQueue.batch};
   * pass the result to a Unit of Work as its `bus` option.
   *
   * @throws {TypeError} When `bus` has no `publishAll` method.
   *
   * @example Give a Unit of Work a batching publisher
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue, EventBus, type UnitOfWorkOptions } from "@aftercommit/core";
   * import { InMemoryJobQueue } from "@aftercommit/core/testing";
   *
   * class Ordered {}
   * const memory = new InMemoryJobQueue();
   * const jobs = new BatchingJobQueue(memory);
   * const bus = new EventBus();
   * bus.register(Ordered, async () => void (await jobs.enqueue("invoice", {})));
   * bus.register(Ordered, async () => void (await jobs.enqueue("receipt", {})));
   * const options: UnitOfWorkOptions = { bus: jobs.publisher(bus) };
   * await options.bus!.publishAll([new Ordered()]);
   * assert.equal(memory.writes.length, 1);
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
   * Adds a job. Inside a batch: checks and buffers it, and resolves at once
   * with the id it will have (even when its key was already used). Outside:
   * the wrapped queue's `enqueue`, `null` for a used key.
   *
   * @throws {TypeError} When the name, the data or the options are invalid;
   * nothing is buffered or written then.
   *
   * @example Enqueue outside a batch goes straight through
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue } from "@aftercommit/core";
   * import { InMemoryJobQueue } from "@aftercommit/core/testing";
   *
   * const memory = new InMemoryJobQueue();
   * const jobs = new BatchingJobQueue(memory);
   * const id = await jobs.enqueue("send-welcome-email", { userId: "u1" });
   * assert.equal(id, memory.jobs[0]!.id);
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
   * Adds several jobs. Inside a batch: checks them all, buffers them, and
   * resolves at once with their ids. Outside: the wrapped queue's
   * `enqueueMany`.
   *
   * @throws {TypeError} When any request is invalid; nothing is buffered or
   * written then.
   *
   * @example Enqueue several jobs inside a batch
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue } from "@aftercommit/core";
   * import { InMemoryJobQueue } from "@aftercommit/core/testing";
   *
   * const memory = new InMemoryJobQueue();
   * const jobs = new BatchingJobQueue(memory);
   * await jobs.batch(async () => {
   *   await jobs.enqueueMany([{ name: "a", data: 1 }, { name: "b", data: 2 }]);
   *   await jobs.enqueue("c", 3);
   * });
   * assert.deepEqual(memory.writes[0]!.jobs.map((job) => job.data), [1, 2, 3]);
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

  /** The wrapped queue's `work`: workers are not batched. */
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
   */
  stop(): Promise<void> {
    return this.#inner.stop();
  }

  // The buffer to add to, or undefined when the call goes straight through.
  #openBuffer(): Buffer | undefined {
    if (!this.#canAnswer) return undefined;
    const buffer = this.#buffers.getStore();
    return buffer?.closed === false ? buffer : undefined;
  }

  // Checks a request and gives it its id, once: enqueueMany takes it as is.
  #prepare(job: JobRequest): JobRequest & { readonly id: string } {
    if (typeof job !== "object" || job === null) {
      expected("enqueue job", "a { name, data, options } request", job);
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
