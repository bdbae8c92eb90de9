// The job queue port, which adapters implement, and the checks of a job that
// every queue shares.
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
  /** An idempotency key, such as an event id. Default: none. */
  readonly key?: string;
  /**
   * The job's id, a lowercase UUID (not with `key`); a used id creates nothing.
   * @default {undefined (a key-derived id, or a fresh UUID)}
   */
  readonly id?: string;
  /** Seconds from now, or a future `Date`. Default: at once. */
  readonly startAfter?: number | Date;
  /** Seconds before the job may start (or `startAfter`). Default: 0. */
  readonly startAfterSeconds?: number;
  /** An integer; higher runs first. Default: 0. */
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
  /** Fetch loops: up to `concurrency × batchSize` jobs at once. Default: 1. */
  readonly concurrency?: number;
  /** Jobs one fetch takes, run concurrently. Default: 10. */
  readonly batchSize?: number;
  /** How often an idle worker polls (for retries). Default: 2. */
  readonly pollingIntervalSeconds?: number;
}

/**
 * A durable queue that handlers hand slow or fallible work to, implemented by
 * adapters (such as `@aftercommit/core/pg-boss`).
 *
 * @example Enqueue with an idempotency key
 * ```ts
 * import assert from "node:assert/strict";
 * import type { JobQueue } from "@aftercommit/core";
 * import { InMemoryJobQueue } from "@aftercommit/core/testing";
 *
 * const memory = new InMemoryJobQueue();
 * const jobs: JobQueue = memory;
 * await jobs.enqueue("send-welcome-email", { userId: "u1" }, { key: "e1" });
 * await jobs.enqueue("send-welcome-email", { userId: "u1" }, { key: "e1" });
 * assert.equal(memory.jobs.length, 1);
 * ```
 */
export interface JobQueue {
  /**
   * Adds a job with JSON-serialisable `data`; returns its id, or `null` when
   * a job with the same key exists.
   * @throws {TypeError} When the name, the data or the options are invalid.
   */
  enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null>;
  /**
   * Adds several jobs in one round trip per queue; returns their ids in
   * order, `null` where the key was already used.
   * @throws {TypeError} When any request is invalid; nothing is written then.
   */
  enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]>;
  /**
   * Optional: checks a job as `enqueue` does and gives it its id, writing
   * nothing; `BatchingJobQueue` buffers only over a queue that has it.
   * @throws {TypeError} When `enqueue` would throw for this request.
   */
  prepare?(request: JobRequest): JobRequest & { readonly id: string };
  /**
   * Starts running `handler` for jobs of queue `name` in this process;
   * returns the worker's id.
   * @throws {TypeError} When the name, the handler or the options are invalid.
   */
  work<T>(
    name: string,
    handler: JobHandler<T>,
    options?: WorkOptions,
  ): Promise<string>;
  /** Stops fetching jobs and closes once every running handler has finished. */
  stop(): Promise<void>;
}

// pg-boss's rule for queue names (it splices them into SQL text), kept by
// every queue so that a job one accepts, the others accept.
const QUEUE_NAME = /^[A-Za-z0-9_.\-/]+$/;
// Lowercase, as PostgreSQL returns the ids an adapter matches.
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Throws unless `name` is a queue name.
 * @internal
 */
export function assertQueueName(
  name: unknown,
  action: string,
): asserts name is string {
  if (typeof name === "string" && QUEUE_NAME.test(name)) return;
  fail(
    action,
    typeof name !== "string" || name === ""
      ? `expected a queue name, received ${
        name === "" ? "an empty string" : describe(name)
      }; pass a name such as "send-welcome-email"`
      : `invalid queue name ${
        JSON.stringify(name)
      }: use only letters, digits, "_", "-", "." and "/", for example "send-welcome-email"`,
  );
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
 * A request {@linkcode prepareJob} checked: its options carry the id.
 * @internal
 */
export class PreparedJob implements JobRequest {
  readonly options: EnqueueOptions;
  readonly startAfter: number | Date | undefined;

  constructor(
    readonly name: string,
    readonly data: unknown,
    readonly id: string,
    priority?: number,
    later?: number | Date,
  ) {
    const at = later instanceof Date || (later ?? 0) > 0 ? later : undefined;
    const options: {
      id: string;
      priority?: number;
      startAfter?: number | Date;
    } = { id };
    if (priority !== undefined) options.priority = priority;
    if (at !== undefined) options.startAfter = at;
    this.options = options;
    this.startAfter = at;
  }
}

/**
 * Checks a job request as every queue does and gives it its id (from the key,
 * the given id, or a fresh UUID); `what` is the action for messages.
 * @internal
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
  // Rule by rule, not readOptions: this runs for every job, which usually
  // has a key and nothing else.
  assertObject(options, "options", action);
  const { key, id, priority, startAfterSeconds, startAfter }: EnqueueOptions =
    options ?? {};
  KEY(key, "options.key", action);
  ID(id, "options.id", action);
  if (key !== undefined && id !== undefined) {
    fail(
      action,
      "pass options.key or options.id, not both; a key derives the job id itself",
    );
  }
  PRIORITY(priority, "options.priority", action);
  SECONDS(startAfterSeconds, "options.startAfterSeconds", action);
  if (startAfter !== undefined) {
    assertStartAfter(startAfter, "options.startAfter", action);
    if (startAfterSeconds !== undefined) {
      fail(
        action,
        "pass options.startAfter or options.startAfterSeconds, not both",
      );
    }
  }
  return new PreparedJob(
    name,
    data,
    key !== undefined ? jobIdFor(name, key) : id ?? crypto.randomUUID(),
    priority,
    startAfter ?? startAfterSeconds,
  );
}

/**
 * {@linkcode prepareJob} for each of `enqueueMany(jobs)`.
 * @internal
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
