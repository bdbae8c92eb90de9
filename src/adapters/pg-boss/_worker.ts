// The pg-boss adapter's workers: the start, one attempt (with its span and
// metrics when telemetry is on), and the stamp a job's data carries.
import { getLogger } from "@logtape/logtape";
import type { Job as PgBossJob, JobResult, PgBoss } from "pg-boss";
import {
  assertQueueName,
  type JobHandler,
  type WorkOptions,
} from "../../application/job_queue.ts";
import {
  activeTraceparent,
  contextFromTraceparent,
  inSpan,
  type Instruments,
  meters,
  recordError,
  type Span,
  SpanKind,
  tracing,
} from "../../internal/telemetry.ts";
import { describe } from "../../internal/describe.ts";
import {
  expected,
  integer,
  number,
  readOptions,
} from "../../internal/rules.ts";
import { errorType, loggableError } from "../../internal/loggable_error.ts";
import { type LocalStarts, LocalWorker, untilAbort } from "./_local_start.ts";

const logger = getLogger(["aftercommit", "jobs"]);

// Plain-object data carries the trace context and, with metrics on, the
// enqueue time (ms since the epoch, for the start delay) under keys the
// worker removes before the handler sees the data.
const TRACEPARENT = "aftercommit.traceparent";
const ENQUEUED_AT = "aftercommit.enqueuedAt";

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Stamps the data of the jobs enqueued now: decided once per write. */
export function stamped(): (data: unknown) => object {
  const traceparent = activeTraceparent();
  const metered = meters() !== undefined;
  if (traceparent === undefined && !metered) return (data) => data as object;
  const stamp = {
    ...(traceparent === undefined ? {} : { [TRACEPARENT]: traceparent }),
    ...(metered ? { [ENQUEUED_AT]: Date.now() } : {}),
  };
  return (data) => isPlainObject(data) ? { ...data, ...stamp } : data as object;
}

/** The data without the stamp, and the stamp. */
export function withoutStamp<T>(
  data: T,
): { data: T; traceparent: unknown; enqueuedAt: unknown } {
  if (
    !isPlainObject(data) ||
    (!Object.hasOwn(data, TRACEPARENT) && !Object.hasOwn(data, ENQUEUED_AT))
  ) {
    return { data, traceparent: undefined, enqueuedAt: undefined };
  }
  const { [TRACEPARENT]: traceparent, [ENQUEUED_AT]: enqueuedAt, ...rest } =
    data;
  return { data: rest as T, traceparent, enqueuedAt };
}

const WORK = {
  // Measured (docs/bench/): one loop of ten ran 3,000–4,100 no-op jobs/s
  // on 2 cores where one job at a time ran 280–540; more loops added none.
  concurrency: integer(1, 1000, 1),
  batchSize: integer(1, 10_000, 10),
  pollingIntervalSeconds: number(0.5, 2),
};

/** What the adapter's parts need of the running queue. */
export interface QueueAccess
  extends Pick<LocalStarts, "insertStarted" | "giveBack" | "wake"> {
  /** Throws when the queue is stopped. */
  assertRunning(action: string): void;
  /** Creates the queue on first use. */
  ensureQueue(name: string): Promise<void>;
}

/**
 * Checks `work()`'s arguments and starts a pg-boss worker running `handler`.
 *
 * @returns pg-boss's work id, and the worker jobs can be handed to.
 */
export async function startWorker<T>(
  boss: PgBoss,
  queue: QueueAccess,
  name: string,
  handler: JobHandler<T>,
  options: WorkOptions,
): Promise<{ workId: string; local: LocalWorker }> {
  assertQueueName(name, "start worker");
  const action = `start worker on queue "${name}"`;
  if (typeof handler !== "function") {
    expected(action, "a handler function", handler);
  }
  const { concurrency, batchSize, pollingIntervalSeconds } = readOptions(
    options,
    WORK,
    action,
  );
  queue.assertRunning(action);
  await queue.ensureQueue(name);
  const wake = () => queue.wake(name);
  const local = new LocalWorker(name, concurrency, batchSize, (fetched) => {
    const job = fetched as PgBossJob<T>; // A job of this queue.
    const instruments = meters();
    return instruments !== undefined || tracing()
      ? observed(name, handler, job, wake, instruments)
      : attempt(name, handler, job, job.data, wake, undefined);
  });
  const workId = await boss.work<T>(name, {
    batchSize,
    localConcurrency: concurrency,
    pollingIntervalSeconds,
    // A retry whose delay ended sends no NOTIFY: its backstop polls as often.
    notifyPollingIntervalSeconds: pollingIntervalSeconds,
    burstWhenBatchFull: batchSize > 1,
    perJobResults: true,
  }, async (jobs: PgBossJob<T>[]) => {
    const taken = local.take();
    // Batches handed over at their insert hold every loop.
    if (!taken && await queue.giveBack(local, jobs)) return [];
    // A full batch means more may wait (pg-boss bursts only for batches > 1).
    if (jobs.length >= batchSize) wake();
    const ids = jobs.map((job) => job.id);
    for (const id of ids) local.running.add(id);
    try {
      return await Promise.all(jobs.map((job) => local.run(job)));
    } finally {
      local.release(ids, taken);
    }
  });
  local.workerIds = boss.getWipData()
    .filter((worker) => worker.workId === workId)
    .map((worker) => worker.id);
  return { workId, local };
}

// One attempt with its span (tracing on) and its metrics (metrics on).
function observed<T>(
  name: string,
  handler: JobHandler<T>,
  job: PgBossJob<T>,
  onFailure: () => void,
  instruments: Instruments | undefined,
): Promise<JobResult> {
  const { data, traceparent, enqueuedAt } = withoutStamp(job.data);
  const destination = { "messaging.destination.name": name };
  const run = async (span: Span | undefined) => {
    if (instruments === undefined) {
      return attempt(name, handler, job, data, onFailure, span);
    }
    const started = performance.now();
    if (job.retryCount === 0 && typeof enqueuedAt === "number") {
      instruments.jobStartDelay.record(
        Math.max(0, Date.now() - enqueuedAt) / 1000,
        destination,
      );
    }
    const result = await attempt(name, handler, job, data, onFailure, span);
    instruments.jobDuration.record((performance.now() - started) / 1000, {
      ...destination,
      "aftercommit.outcome": result.status,
    });
    if (result.status === "failed") {
      const { name: type } = result.output as { name?: unknown };
      instruments.failures.add(1, {
        ...destination,
        "aftercommit.component": "job",
        "error.type": typeof type === "string" ? type : "unknown",
      });
    }
    return result;
  };
  if (!tracing()) return run(undefined);
  // Every attempt of the job continues the trace it was enqueued in.
  return inSpan(`work ${name}`, {
    kind: SpanKind.CONSUMER,
    parent: contextFromTraceparent(traceparent),
    attributes: {
      "messaging.system": "pg-boss",
      "messaging.operation.type": "process",
      "messaging.operation.name": "work",
      ...destination,
      "messaging.message.id": job.id,
      "aftercommit.job.attempt": job.retryCount + 1,
    },
  }, run);
}

// Runs the handler and answers pg-boss; never throws. `data` is unstamped.
async function attempt<T>(
  name: string,
  handler: JobHandler<T>,
  job: PgBossJob<T>,
  data: T,
  onFailure: () => void,
  span: Span | undefined,
): Promise<JobResult> {
  const { id, signal } = job;
  const number = job.retryCount + 1;
  try {
    const running = handler({ id, name, data, attempt: number, signal });
    // pg-boss aborts the signal at the expiry (or a stop without waiting)
    // and holds the loop until the handler settles: one that ignores its
    // signal would block the queue, so the wait ends at the abort.
    if (running instanceof Promise && await untilAbort(signal, running)) {
      return abandoned(name, job, number, running, span);
    }
    span?.setAttribute("aftercommit.outcome", "completed");
    return { id, status: "completed" };
  } catch (error) {
    logger.error(
      "Job {jobName} {jobId} failed on attempt {attempt}: {error}",
      {
        jobName: name,
        jobId: id,
        attempt: number,
        error: loggableError(error),
      },
    );
    if (span !== undefined) {
      span.setAttribute("aftercommit.outcome", "failed");
      recordError(span, error);
    }
    // A retry without delay is ready now: fetch it without waiting.
    onFailure();
    return {
      id,
      status: "failed",
      output: error instanceof Error
        ? { name: error.name, message: error.message }
        : { message: `Non-error thrown: ${describe(error)}` },
    };
  }
}

function abandoned(
  name: string,
  job: PgBossJob<unknown>,
  attempt: number,
  running: Promise<unknown>,
  span: Span | undefined,
): JobResult {
  const fields = { jobName: name, jobId: job.id, attempt };
  logger.warn(
    "Job {jobName} {jobId} (attempt {attempt}) is still running after its signal was aborted; its worker slot is freed and the handler is no longer awaited",
    fields,
  );
  const settled = (how: string) =>
    logger.info(
      "Job {jobName} {jobId} (attempt {attempt}), abandoned at its expiry, settled later ({how})",
      { ...fields, how },
    );
  running.then(() => settled("returned"), (e) => settled(errorType(e)));
  const output = {
    name: "JobAbandonedError",
    message:
      "the handler did not stop when the attempt expired or the queue stopped",
  };
  if (span !== undefined) {
    span.setAttribute("aftercommit.outcome", "abandoned");
    recordError(span, Object.assign(new Error(output.message), output));
  }
  return { id: job.id, status: "failed", output };
}
