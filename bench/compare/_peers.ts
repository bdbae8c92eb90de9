// The peers, each in its strongest configuration, opened through their own
// public APIs.
import { PgBoss } from "pg-boss";
import {
  Logger,
  makeWorkerUtils,
  run,
  type Runner,
  type TaskList,
  type WorkerUtils,
} from "graphile-worker";

/** A graphile-worker logger that drops everything (its INFO line per job would dominate). */
export const quietGraphileLogger: Logger = new Logger(() => () => {});

/** pg-boss 12 with LISTEN/NOTIFY, in its own schema. */
export async function startPgBoss(
  url: string,
  schema: string,
): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: url,
    schema,
    useListenNotify: true,
    schedule: false,
    max: 10,
  });
  boss.on("error", (e) => {
    throw e;
  });
  await boss.start();
  return boss;
}

/** Creates a pg-boss queue with `notify: true` (wakes LISTENing workers on insert). */
export async function pgBossQueue(boss: PgBoss, name: string): Promise<void> {
  await boss.createQueue(name, { notify: true });
}

/** pg-boss's tuned worker options: the smallest polling interval, burst batches. */
export const PG_BOSS_TUNED = {
  batchSize: 100,
  localConcurrency: 4,
  pollingIntervalSeconds: 0.5,
  burstWhenBatchFull: true,
} as const;

/** A graphile-worker runner with the given task list and worker options. */
export async function startGraphile(
  url: string,
  taskList: TaskList,
  options: {
    concurrency: number;
    pollInterval?: number;
    localQueueSize?: number;
    completeJobBatchDelay?: number;
  },
): Promise<Runner> {
  const worker: Record<string, unknown> = {};
  if (options.localQueueSize !== undefined) {
    worker.localQueue = { size: options.localQueueSize };
  }
  if (options.completeJobBatchDelay !== undefined) {
    worker.completeJobBatchDelay = options.completeJobBatchDelay;
  }
  return await run({
    connectionString: url,
    concurrency: options.concurrency,
    ...(options.pollInterval === undefined
      ? {}
      : { pollInterval: options.pollInterval }),
    noHandleSignals: true,
    logger: quietGraphileLogger,
    taskList,
    preset: { worker },
  });
}

/** graphile-worker's utilities (addJob, addJobs, migrate). */
export async function graphileUtils(url: string): Promise<WorkerUtils> {
  const utils = await makeWorkerUtils({
    connectionString: url,
    logger: quietGraphileLogger,
  });
  await utils.migrate();
  return utils;
}

/** Stops a runner and waits for its pool to close. */
export async function stopGraphile(runner: Runner): Promise<void> {
  await runner.stop();
  await runner.promise.catch(() => {});
}
