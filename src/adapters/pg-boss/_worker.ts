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
// time its start delay counts from (ms since the epoch: the enqueue, or the
// job's start-after time if later) under keys the worker removes.
const TRACEPARENT = "aftercommit.traceparent";
/** The key of the time a job's start delay counts from, in its data. */
export const ENQUEUED_AT = "aftercommit.enqueuedAt";

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" &&
  (Object.getPrototypeOf(value) ?? Object.prototype) === Object.prototype;

/**
 * Stamps the data of the jobs enqueued now (each with its `startAfter`, if
 * any): decided once per write.
 */
export function stamped(): (
  data: unknown,
  startAfter?: number | Date,
) => object {
  const traceparent = activeTraceparent();
  const now = meters() === undefined ? undefined : Date.now();
  if (traceparent === undefined && now === undefined) {
    return (data) => data as object;
  }
  const stamp = {
    ...(traceparent === undefined ? {} : { [TRACEPARENT]: traceparent }),
    ...(now === undefined ? {} : { [ENQUEUED_AT]: now }),
  };
  return (data, startAfter) => {
    if (!isPlainObject(data)) return data as object;
    if (now === undefined || startAfter === undefined) {
      return { ...data, ...stamp };
    }
    // A delayed job's start delay counts from its start-after time.
    const at = startAfter instanceof Date
      ? startAfter.getTime()
      : now + startAfter * 1000;
    return { ...data, ...stamp, [ENQUEUED_AT]: Math.max(now, at) };
  };
}

/** The data without the stamp, and the stamp. */
export function withoutStamp<T>(
  data: T,
): { data: T; traceparent?: unknown; enqueuedAt?: unknown } {
  if (!isPlainObject(data) || !(TRACEPARENT in data || ENQUEUED_AT in data)) {
    return { data };
  }
  const { [TRACEPARENT]: traceparent, [ENQUEUED_AT]: enqueuedAt, ...rest } =
    data;
  return { data: rest as T, traceparent, enqueuedAt };
}

const WORK = {
  // Measured (docs/bench/): one loop of ten beats more loops of one.
  concurrency: integer(1, 1000, 1),
  batchSize: integer(1, 10_000, 10),
  pollingIntervalSeconds: number(0.5, 2),
};

/** What the adapter's parts need of the running queue. */
export interface QueueAccess extends Pick<LocalStarts, "wake"> {
  /** Throws when the queue is stopped. */
  assertRunning(action: string): void;
  /** Creates the queue on first use. */
  ensureQueue(name: string): Promise<void>;
}

/** Checks `work()`'s arguments, starts a worker on `handler`: its id. */
export async function startWorker<T>(
  boss: PgBoss,
  queue: QueueAccess,
  locals: LocalStarts,
  name: string,
  handler: JobHandler<T>,
  options: WorkOptions,
): Promise<string> {
  assertQueueName(name, "start worker");
  const action = `start worker on queue "${name}"`;
  if (typeof handler !== "function") {
    expected(action, "a handler function", handler);
  }
  const read = readOptions(options, WORK, action);
  const { concurrency, batchSize, pollingIntervalSeconds } = read;
  queue.assertRunning(action);
  await queue.ensureQueue(name);
  const wake = () => locals.wake(name);
  const local = new LocalWorker(
    name,
    concurrency,
    batchSize,
    (job) => observed(name, handler, job as PgBossJob<T>, wake),
  );
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
    if (!taken && await locals.giveBack(local, jobs)) return [];
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
  locals.add(local);
  return workId;
}

// One attempt, in its span (in the trace the job was enqueued in) and
// measured, as far as telemetry is on.
function observed<T>(
  name: string,
  handler: JobHandler<T>,
  job: PgBossJob<T>,
  wake: () => void,
): Promise<JobResult> {
  // Unstamped even with telemetry off here: the enqueuer may have had it on.
  const { data, traceparent, enqueuedAt } = withoutStamp(job.data);
  const instruments = meters();
  if (instruments === undefined && !tracing()) {
    return attempt(name, handler, job, data, wake, undefined);
  }
  const destination = { "messaging.destination.name": name };
  const run = async (span?: Span) => {
    const started = performance.now();
    if (job.retryCount === 0 && typeof enqueuedAt === "number") {
      const delay = Math.max(0, Date.now() - enqueuedAt) / 1000;
      instruments?.jobStartDelay.record(delay, destination);
    }
    const result = await attempt(name, handler, job, data, wake, span);
    const outcome = { ...destination, "aftercommit.outcome": result.status };
    const seconds = (performance.now() - started) / 1000;
    instruments?.jobDuration.record(seconds, outcome);
    if (result.status === "failed") {
      const { name: type } = result.output as { name?: unknown };
      instruments?.failures.add(1, {
        ...destination,
        "aftercommit.component": "job",
        "error.type": typeof type === "string" ? type : "unknown",
      });
    }
    return result;
  };
  return !tracing() ? run() : inSpan(`work ${name}`, {
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

const ABANDONED = {
  name: "JobAbandonedError",
  message:
    "the handler did not stop when the attempt expired or the queue stopped",
};

// Runs the handler and answers pg-boss; never throws. `data` is unstamped.
async function attempt<T>(
  name: string,
  handler: JobHandler<T>,
  job: PgBossJob<T>,
  data: T,
  wake: () => void,
  span: Span | undefined,
): Promise<JobResult> {
  const { id, signal } = job;
  const number = job.retryCount + 1;
  const fields = { jobName: name, jobId: id, attempt: number };
  const failed = (status: string, error: unknown, output: object) => {
    if (span !== undefined) {
      span.setAttribute("aftercommit.outcome", status);
      recordError(span, error);
    }
    return { id, status: "failed", output } as const;
  };
  try {
    const running = handler({ id, name, data, attempt: number, signal });
    // pg-boss aborts the signal at the expiry (or a stop without waiting)
    // and holds the loop until the handler settles: one that ignores its
    // signal would block the queue, so the wait ends at the abort.
    if (!(running instanceof Promise && await untilAbort(signal, running))) {
      span?.setAttribute("aftercommit.outcome", "completed");
      return { id, status: "completed" };
    }
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
    const error = Object.assign(new Error(ABANDONED.message), ABANDONED);
    return failed("abandoned", error, ABANDONED);
  } catch (error) {
    logger.error("Job {jobName} {jobId} failed on attempt {attempt}: {error}", {
      ...fields,
      error: loggableError(error),
    });
    wake(); // A retry without delay is ready now: fetch it without waiting.
    return failed(
      "failed",
      error,
      error instanceof Error
        ? { name: error.name, message: error.message }
        : { message: `Non-error thrown: ${describe(error)}` },
    );
  }
}
