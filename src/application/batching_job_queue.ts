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

const logger = getLogger(["aftercommit", "jobs"]);

// `closed` once the batch's work has returned: an enqueue still running in
// its async context (a timer) goes straight through.
type Buffer = { readonly requests: JobRequest[]; closed: boolean };

/**
 * A {@linkcode JobQueue} that batches: inside {@linkcode BatchingJobQueue.batch}
 * or a publish through {@linkcode BatchingJobQueue.publisher}, each `enqueue`
 * is checked by the wrapped queue's `prepare`, answered at once with the job's
 * id (even for a used key) and buffered; the batch ends with one
 * `enqueueMany`. Outside a batch, or over a queue without `prepare`, calls go
 * straight through. Give the handlers this queue, not the wrapped one.
 *
 * @example One write for the jobs of one publish
 * ```ts
 * import assert from "node:assert/strict";
 * import { BatchingJobQueue, EventBus } from "@aftercommit/core";
 * import { InMemoryJobQueue } from "@aftercommit/core/testing";
 *
 * class Registered {}
 * const memory = new InMemoryJobQueue();
 * const jobs = new BatchingJobQueue(memory);
 * const bus = new EventBus();
 * bus.register(Registered, async () => void (await jobs.enqueue("email", {})));
 * await jobs.publisher(bus).publishAll([new Registered(), new Registered()]);
 * assert.deepEqual([memory.jobs.length, memory.writes.length], [2, 1]);
 * ```
 */
export class BatchingJobQueue implements JobQueue {
  readonly #inner: JobQueue;
  readonly #buffers = new AsyncLocalStorage<Buffer>();
  readonly #canAnswer: boolean;

  /**
   * Wraps `inner`, the queue that writes the jobs (such as a
   * `PgBossJobQueue`).
   * @throws {TypeError} When `inner` does not look like a {@linkcode JobQueue}.
   */
  constructor(inner: JobQueue) {
    const like = inner as Partial<JobQueue> | null;
    if (
      typeof like !== "object" ||
      (["enqueue", "enqueueMany", "work", "stop"] as const).some((method) =>
        typeof like?.[method] !== "function"
      )
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
    return this.#buffers.getStore()?.closed === false;
  }

  /**
   * Runs `fn`, then writes the jobs enqueued meanwhile with one
   * `enqueueMany`, even when `fn` threw. Inside a batch, `fn` joins it.
   * @returns What `fn` returned, once the jobs are written.
   * @throws {TypeError} When `fn` is not a function.
   * @throws The error of `fn` or of the write (both: a `SuppressedError`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue } from "@aftercommit/core";
   * import { InMemoryJobQueue } from "@aftercommit/core/testing";
   *
   * const memory = new InMemoryJobQueue();
   * const jobs = new BatchingJobQueue(memory);
   * await jobs.batch(() => Promise.all([jobs.enqueue("a", 1), jobs.enqueue("b", 2)]));
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
      await this.#flush(buffer).catch((flushError) => {
        throw new SuppressedError(
          flushError,
          error,
          "Writing the buffered jobs failed after the batch itself failed",
        );
      });
      throw error;
    }
    await this.#flush(buffer);
    return result;
  }

  /**
   * Wraps `bus` so that each `publishAll` is a {@linkcode BatchingJobQueue.batch};
   * pass the result to a Unit of Work as its `bus` option.
   * @throws {TypeError} When `bus` has no `publishAll` method.
   *
   * @example
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
   * const options: UnitOfWorkOptions = { bus: jobs.publisher(bus) };
   * await options.bus!.publishAll([new Ordered()]);
   * assert.equal(memory.writes[0]!.method, "enqueueMany"); // buffered
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
      publishAll: (events, options) =>
        this.batch(() => bus.publishAll(events, options)),
      batch: (work) => this.batch(work),
    };
  }

  /**
   * Adds a job: inside a batch, checks and buffers it and answers its id at
   * once; outside, the wrapped queue's `enqueue`.
   * @throws {TypeError} When the name, the data or the options are invalid.
   *
   * @example Outside a batch, straight through
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue } from "@aftercommit/core";
   * import { InMemoryJobQueue } from "@aftercommit/core/testing";
   *
   * const memory = new InMemoryJobQueue();
   * const id = await new BatchingJobQueue(memory).enqueue("send-email", {});
   * assert.equal(id, memory.jobs[0]!.id);
   * ```
   */
  enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null> {
    const buffer = this.#openBuffer();
    if (buffer === undefined) return this.#inner.enqueue(name, data, options);
    // Not async: this is the hot path, and an async call costs more.
    try {
      const request = this.#inner.prepare!(
        options === undefined ? { name, data } : { name, data, options },
      );
      buffer.requests.push(request);
      return Promise.resolve(request.id);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Adds several jobs: inside a batch, checks and buffers them all and
   * answers their ids at once; outside, the wrapped queue's `enqueueMany`.
   * @throws {TypeError} When any request is invalid; none is buffered then.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BatchingJobQueue } from "@aftercommit/core";
   * import { InMemoryJobQueue } from "@aftercommit/core/testing";
   *
   * const memory = new InMemoryJobQueue();
   * const jobs = new BatchingJobQueue(memory);
   * await jobs.batch(() => jobs.enqueueMany([{ name: "a", data: 1 }, { name: "b", data: 2 }]));
   * assert.deepEqual(memory.writes[0]!.jobs.map((job) => job.data), [1, 2]);
   * ```
   */
  async enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    const buffer = this.#openBuffer();
    if (buffer === undefined || !Array.isArray(jobs)) {
      return await this.#inner.enqueueMany(jobs);
    }
    const prepared = jobs.map((job) => this.#inner.prepare!(job));
    for (const request of prepared) buffer.requests.push(request);
    return prepared.map(({ id }) => id);
  }

  /** The wrapped queue's `work`: workers are not batched. */
  work<T>(
    name: string,
    handler: JobHandler<T>,
    options?: WorkOptions,
  ): Promise<string> {
    return this.#inner.work(name, handler, options);
  }

  /** Stops the wrapped queue; a batch still running then fails its write. */
  stop(): Promise<void> {
    return this.#inner.stop();
  }

  #openBuffer(): Buffer | undefined {
    const buffer = this.#canAnswer ? this.#buffers.getStore() : undefined;
    return buffer?.closed === false ? buffer : undefined;
  }

  // Closes the batch's buffer, then writes what it holds.
  async #flush(buffer: Buffer): Promise<void> {
    buffer.closed = true;
    const { requests } = buffer, jobCount = requests.length;
    if (jobCount === 0) return;
    let ids: (string | null)[];
    try {
      ids = await this.#inner.enqueueMany(requests);
    } catch (error) {
      logger.error("Could not write {jobCount} buffered jobs: {error}", {
        jobCount,
        error: loggableError(error),
      });
      throw error;
    }
    const createdCount = ids.filter((id) => id !== null).length;
    logger.debug(
      "Wrote {jobCount} buffered jobs in one enqueueMany: {createdCount} created, {existingCount} already existed",
      { jobCount, createdCount, existingCount: jobCount - createdCount },
    );
  }
}
