/**
 * The job queue port: what handlers use to hand slow or fallible work to a
 * durable queue. Adapters (such as `@aftercommit/core/pg-boss`) implement it;
 * this module imports no driver.
 *
 * @module
 */
import { describe } from "../internal/describe.ts";
import { jobIdFor } from "../internal/job_id.ts";
import {
  assertJson,
  assertObject,
  expected,
  fail,
  integer,
  matches,
  number,
  text,
} from "../internal/rules.ts";
import { assertStartAfter } from "./_delay.ts";

/** Options of {@linkcode JobQueue.enqueue}. */
export interface EnqueueOptions {
  /**
   * An idempotency key, such as an event id: enqueueing twice with the same
   * key and queue name creates one job, and the second call returns `null`
   * (the id inside a `BatchingJobQueue` batch).
   * @default {undefined (every call creates a job)}
   */
  readonly key?: string;
  /**
   * The job's id, a lowercase UUID such as `crypto.randomUUID()` gives; an
   * id that exists creates nothing and returns `null`. Not with `key`.
   * @default {undefined (a key-derived id, or a fresh UUID)}
   */
  readonly id?: string;
  /**
   * When the job may start: seconds from now (0 or more), or a `Date` not in
   * the past; anything else out of range is a `RangeError`.
   * @default {undefined (at once)}
   */
  readonly startAfter?: number | Date;
  /**
   * Seconds before the job may start, as a number `startAfter` (give one).
   * @default {0}
   */
  readonly startAfterSeconds?: number;
  /**
   * An integer; higher runs first.
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
  /** Aborted when the attempt expires or ends, or the queue stops. */
  readonly signal: AbortSignal;
}

/** A function that does the work of one job; throwing fails the attempt. */
export type JobHandler<T = unknown> = (job: Job<T>) => Promise<void> | void;

/** Options of {@linkcode JobQueue.work}. */
export interface WorkOptions {
  /**
   * How many fetch loops this process runs for the queue: up to
   * `concurrency × batchSize` jobs run at once (`batchSize: 1` for one at a
   * time, in queue order).
   * @default {1}
   */
  readonly concurrency?: number;
  /**
   * How many jobs one fetch takes; they run concurrently and succeed or fail
   * each on its own, and the loop fetches again once all are done.
   * @default {10}
   */
  readonly batchSize?: number;
  /**
   * How often an idle worker looks for jobs no wake-up announced (retries
   * after their delay); new jobs wake workers at once.
   * @default {2}
   */
  readonly pollingIntervalSeconds?: number;
}

/**
 * A durable job queue, implemented by adapters.
 *
 * @example A handler that enqueues a job
 * ```ts
 * import assert from "node:assert/strict";
 * import { type JobQueue, On } from "@aftercommit/core";
 * import { InMemoryJobQueue } from "@aftercommit/core/testing";
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
 * const jobs = new InMemoryJobQueue();
 * const welcome = new Welcome(jobs);
 * await welcome.enqueue(new UserRegistered("e1", "u1"));
 * await welcome.enqueue(new UserRegistered("e1", "u1")); // redelivered
 * assert.equal(jobs.jobs.length, 1);
 * ```
 */
export interface JobQueue {
  /**
   * Adds a job with JSON-serialisable `data`; returns its id, or `null` when
   * a job with the same key exists.
   *
   * @throws {TypeError} When the name, the data or the options are invalid;
   * nothing is written then.
   */
  enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null>;
  /**
   * Adds several jobs in one round trip per queue; returns their ids, in
   * order, `null` where the key was already used.
   *
   * @throws {TypeError} When any request is invalid; nothing is written then.
   */
  enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]>;
  /**
   * Checks a job as {@linkcode JobQueue.enqueue} does and gives it the id it
   * will have, writing nothing; `enqueueMany` takes the result as it is.
   * Optional: only a queue that has it lets `BatchingJobQueue` buffer jobs.
   *
   * @throws {TypeError} When `enqueue` would throw one for this request
   * (a `RangeError` for numbers out of range).
   */
  prepare?(request: JobRequest): JobRequest & { readonly id: string };
  /**
   * Starts running `handler` for jobs of queue `name` in this process;
   * returns the worker's id.
   *
   * @throws {TypeError} When the name, the handler or the options are invalid.
   */
  work<T>(
    name: string,
    handler: JobHandler<T>,
    options?: WorkOptions,
  ): Promise<string>;
  /**
   * Stops fetching jobs and closes the connection once every running
   * handler has finished.
   */
  stop(): Promise<void>;
}

// pg-boss's rule for queue names (it splices them into SQL text), kept by
// every queue so that a job one accepts, the others accept.
const QUEUE_NAME = /^[A-Za-z0-9_.\-/]+$/;
// Lowercase only: PostgreSQL returns uuids in lowercase, and an adapter
// matches the ids it gave against the ids its INSERT returns.
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Throws unless `name` is a queue name: letters, digits, `_`, `-`, `.`, `/`.
 *
 * @internal
 */
export function assertQueueName(
  name: unknown,
  action: string,
): asserts name is string {
  if (typeof name !== "string" || name === "") {
    fail(
      action,
      `expected a queue name, received ${
        name === "" ? "an empty string" : describe(name)
      }; pass a name such as "send-welcome-email"`,
    );
  }
  if (!QUEUE_NAME.test(name)) {
    fail(
      action,
      `invalid queue name ${
        JSON.stringify(name)
      }: use only letters, digits, "_", "-", "." and "/", for example "send-welcome-email"`,
    );
  }
}

const KEY = text(
  undefined,
  "pass an event id, or leave it out for a job without idempotency",
);
const ID = matches(
  JOB_ID,
  "a lowercase UUID",
  "pass crypto.randomUUID(), or leave it out",
);
const PRIORITY = integer(-2_147_483_648, 2_147_483_647);
const SECONDS = number(0);

/**
 * A job request that {@linkcode prepareJob} checked and gave its id: its
 * options carry the id, never the key; `startAfter` undefined is at once.
 *
 * @internal
 */
export class PreparedJob implements JobRequest {
  private constructor(
    readonly name: string,
    readonly data: unknown,
    readonly options: EnqueueOptions,
    readonly id: string,
    readonly startAfter: number | Date | undefined,
  ) {}

  /** Used by {@linkcode prepareJob} only. */
  static of(
    name: string,
    data: unknown,
    id: string,
    priority?: number,
    later?: number | Date,
  ): PreparedJob {
    const options: {
      -readonly [K in keyof EnqueueOptions]: EnqueueOptions[K];
    } = { id };
    if (priority !== undefined) options.priority = priority;
    const at = later instanceof Date || (later ?? 0) > 0 ? later : undefined;
    if (at !== undefined) options.startAfter = at;
    return new PreparedJob(name, data, options, id, at);
  }
}

/**
 * Checks one job request as every queue does and gives it its id: derived
 * from the key (the same in every process), the given id, or a fresh UUID.
 * `what` is the action for messages, such as `"enqueue jobs[3]"`.
 *
 * @internal
 * @throws {TypeError} When the request is invalid (a `RangeError` for
 * numbers out of range).
 */
export function prepareJob(
  request: unknown,
  what = "enqueue job",
): PreparedJob {
  if (request instanceof PreparedJob) return request;
  if (
    typeof request !== "object" || request === null || Array.isArray(request)
  ) {
    expected(what, "a { name, data, options } request", request);
  }
  const { name, data, options } = request as JobRequest;
  assertQueueName(name, what);
  const action = `${what} on queue "${name}"`;
  assertJson(data, "data", action);
  if (options === undefined) {
    return PreparedJob.of(name, data, crypto.randomUUID());
  }
  // The rules one by one, not readOptions: this runs for every job, and a
  // job usually has a key and nothing else.
  assertObject(options, "options", action);
  const { key, id, priority, startAfterSeconds, startAfter } = options;
  if (key !== undefined) KEY(key, "options.key", action);
  if (id !== undefined) {
    ID(id, "options.id", action);
    if (key !== undefined) {
      fail(
        action,
        "pass options.key or options.id, not both; a key derives the job id itself",
      );
    }
  }
  if (priority !== undefined) PRIORITY(priority, "options.priority", action);
  if (startAfterSeconds !== undefined) {
    SECONDS(startAfterSeconds, "options.startAfterSeconds", action);
  }
  if (startAfter !== undefined) {
    assertStartAfter(startAfter, "options.startAfter", action);
    if (startAfterSeconds !== undefined) {
      fail(
        action,
        "pass options.startAfter or options.startAfterSeconds, not both",
      );
    }
  }
  return PreparedJob.of(
    name,
    data,
    key !== undefined ? jobIdFor(name, key) : id ?? crypto.randomUUID(),
    priority,
    startAfter ?? startAfterSeconds,
  );
}

/**
 * {@linkcode prepareJob} for each request of `enqueueMany(jobs)`, the index
 * of a bad one in the message.
 *
 * @internal
 * @throws {TypeError} When `jobs` is not an array or a request is invalid.
 */
export function prepareJobs(jobs: unknown): PreparedJob[] {
  if (!Array.isArray(jobs)) {
    expected(
      "enqueue jobs",
      "an array of { name, data, options } requests",
      jobs,
    );
  }
  return jobs.map((job, i) => prepareJob(job, `enqueue jobs[${i}]`));
}
