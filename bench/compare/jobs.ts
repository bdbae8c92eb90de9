// deno-lint-ignore-file require-await -- job handlers are async functions, as users write them
// Job queue measurements: (b) commit → job start, (c) enqueue of a burst,
// (d) no-op throughput. aftercommit runs as a user wires it (PgBossJobQueue
// on the jobs database, BatchingJobQueue's publisher, PostgresUnitOfWork);
// the peers run in their strongest configurations on the same server.
import postgres from "postgres";
import type { Runner } from "graphile-worker";
import { BatchingJobQueue, type EventPublisher } from "../../mod.ts";
import {
  DEFAULT_QUEUE_SETTINGS,
  PgBossJobQueue,
} from "../../src/adapters/pg-boss/mod.ts";
import {
  migrateOutbox,
  PostgresUnitOfWork,
} from "../../src/adapters/postgres/mod.ts";
import {
  check,
  type Database,
  interleave,
  percentile,
  type Report,
  type RunConfig,
  type Variant,
  waitFor,
} from "./_lib.ts";
import {
  enqueueingBus,
  Item,
  ItemCreated,
  ITEMS_DDL,
  jobData,
} from "./_model.ts";
import {
  graphileUtils,
  PG_BOSS_TUNED,
  pgBossQueue,
  startGraphile,
  startPgBoss,
  stopGraphile,
} from "./_peers.ts";

type Log = (line: string) => void;

const PEER_SCHEMA = "pgboss_peer";

// A pg-boss executor on a postgres.js transaction: pg-boss's `db` option
// puts its statements into the caller's transaction.
function txExecutor(tx: postgres.TransactionSql) {
  return {
    executeSql: async (text: string, values?: unknown[]) => ({
      rows: await tx.unsafe(text, values as postgres.ParameterOrJSON<never>[]),
    }),
  };
}

async function countPgBoss(
  sql: postgres.Sql,
  schema: string,
  queue: string,
  state?: "completed",
): Promise<number> {
  const [row] = state === undefined
    ? await sql`select count(*)::int as n from ${
      sql(schema)
    }.job where name = ${queue}`
    : await sql`select count(*)::int as n from ${
      sql(schema)
    }.job where name = ${queue} and state = 'completed'`;
  return row!.n as number;
}

async function countGraphile(sql: postgres.Sql, task: string): Promise<number> {
  const [row] = await sql`select count(*)::int as n from graphile_worker.jobs
    where task_identifier = ${task}`;
  return row!.n as number;
}

/** (c) enqueue a burst of jobs from one publishAll, vs pg-boss insert and graphile addJobs. */
export async function enqueueBench(
  config: RunConfig,
  app: Database,
  jobsDb: Database,
  log: Log,
): Promise<Report> {
  const sizes = config.quick ? [500, 2_000] : [1_000, 10_000];
  const sql = postgres(app.url, { max: 4, onnotice: () => {} });
  const jobsSql = postgres(jobsDb.url, { max: 2, onnotice: () => {} });
  const jobs = await PgBossJobQueue.connect(jobsDb.url);
  const batching = new BatchingJobQueue(jobs);
  const boss = await startPgBoss(app.url, PEER_SCHEMA);
  const utils = await graphileUtils(app.url);
  try {
    const variants: Variant[] = [];
    const groups: Report["groups"][number][] = [];
    for (const n of sizes) {
      const queue = `enqueue-${n}`;
      const publisher = batching.publisher(enqueueingBus(batching, queue));
      await pgBossQueue(boss, queue);
      // The same queue settings as the adapter's queues: retries with
      // backoff, an expiry, a dead-letter queue.
      const sameQueue = `${queue}-same`;
      await boss.createQueue(`${sameQueue}__dead`, { notify: true });
      await boss.createQueue(sameQueue, {
        notify: true,
        retryLimit: DEFAULT_QUEUE_SETTINGS.retryLimit,
        retryDelay: DEFAULT_QUEUE_SETTINGS.retryDelaySeconds,
        retryBackoff: DEFAULT_QUEUE_SETTINGS.retryBackoff,
        retryDelayMax: DEFAULT_QUEUE_SETTINGS.retryDelayMaxSeconds,
        expireInSeconds: DEFAULT_QUEUE_SETTINGS.expireInSeconds,
        retentionSeconds: DEFAULT_QUEUE_SETTINGS.retentionSeconds,
        deleteAfterSeconds: DEFAULT_QUEUE_SETTINGS.deleteAfterSeconds,
        deadLetter: `${sameQueue}__dead`,
      });
      const events = () =>
        Array.from(
          { length: n },
          (_, i) => new ItemCreated(crypto.randomUUID(), `item ${i}`, i),
        );
      const ours = `aftercommit publishAll → BatchingJobQueue, ${n} jobs`;
      const bossRow = `pg-boss insert, ${n} jobs`;
      const bossSameRow =
        `pg-boss insert, queue with the adapter's settings, ${n} jobs`;
      const graphile = `graphile-worker addJobs, ${n} jobs`;
      variants.push(
        {
          name: ours,
          async sample() {
            const batch = events();
            const t0 = performance.now();
            await publisher.publishAll(batch);
            const ms = performance.now() - t0;
            check(ours, await countPgBoss(jobsSql, "pgboss", queue), n);
            await jobsSql`delete from pgboss.job where name = ${queue}`;
            return { ms };
          },
        },
        {
          name: bossSameRow,
          async sample() {
            const batch = events();
            const t0 = performance.now();
            await boss.insert(
              sameQueue,
              batch.map((e) => ({ id: e.eventId, data: jobData(e) })),
            );
            const ms = performance.now() - t0;
            check(
              bossSameRow,
              await countPgBoss(sql, PEER_SCHEMA, sameQueue),
              n,
            );
            await sql`delete from ${
              sql(PEER_SCHEMA)
            }.job where name = ${sameQueue}`;
            return { ms };
          },
        },
        {
          name: bossRow,
          async sample() {
            const batch = events();
            const t0 = performance.now();
            // The event id as the job id: the same idempotency as a key.
            await boss.insert(
              queue,
              batch.map((e) => ({ id: e.eventId, data: jobData(e) })),
            );
            const ms = performance.now() - t0;
            check(bossRow, await countPgBoss(sql, PEER_SCHEMA, queue), n);
            await sql`delete from ${
              sql(PEER_SCHEMA)
            }.job where name = ${queue}`;
            return { ms };
          },
        },
        {
          name: graphile,
          async sample() {
            const batch = events();
            const t0 = performance.now();
            await utils.addJobs(
              batch.map((e) => ({ identifier: queue, payload: jobData(e) })),
            );
            const ms = performance.now() - t0;
            check(graphile, await countGraphile(sql, queue), n);
            await sql`delete from graphile_worker._private_jobs`;
            return { ms };
          },
        },
      );
      groups.push({
        title: `${n.toLocaleString("en-US")} jobs`,
        baseline: bossRow,
        rows: [ours, bossRow, bossSameRow, graphile],
      });
    }
    const samples = await interleave(variants, config, log);
    return {
      id: "c_enqueue",
      title: "(c) Enqueue a burst of jobs",
      description:
        "One `publishAll` of N `ItemCreated` events whose `@On` handler enqueues one keyed job each through `BatchingJobQueue` (validated, id derived from the event id and the queue name, one `enqueueMany`, one INSERT), against pg-boss 12 `insert` of the same N jobs (the event id as job id, no per-job validation: its raw path), into a queue with pg-boss's defaults (its fastest) and into one with the adapter's settings (5 retries with backoff, an expiry, a dead-letter queue: pg-boss's insert costs more for those), and graphile-worker `addJobs` (no job keys). Clock: from the call to its promise resolving (the INSERT committed). Each sample's job count is checked in the database, then the jobs are deleted outside the clock. No worker runs.",
      metrics: [{ key: "ms", label: "time", unit: "ms" }],
      groups,
      samples,
    };
  } finally {
    await jobs.stop();
    await boss.stop({ graceful: false, close: true });
    await utils.release();
    await sql.end();
    await jobsSql.end();
  }
}

/** (d) no-op jobs/s: aftercommit worker defaults and tuned, vs graphile-worker and pg-boss. */
export async function throughputBench(
  config: RunConfig,
  app: Database,
  jobsDb: Database,
  log: Log,
): Promise<Report> {
  const n = config.quick ? 1_000 : 10_000;
  const sql = postgres(app.url, { max: 4, onnotice: () => {} });
  const jobsSql = postgres(jobsDb.url, { max: 2, onnotice: () => {} });
  const jobs = await PgBossJobQueue.connect(jobsDb.url);
  const boss = await startPgBoss(app.url, PEER_SCHEMA);
  const utils = await graphileUtils(app.url);
  const counts = new Map<string, number>();
  const noop = (key: string) => () => {
    counts.set(key, (counts.get(key) ?? 0) + 1);
  };
  const runners: Runner[] = [];
  try {
    await jobs.work("tp-defaults", noop("tp-defaults"));
    await jobs.work("tp-tuned", noop("tp-tuned"), TUNED_WORKER);
    await pgBossQueue(boss, "tp-peer");
    await boss.work("tp-peer", PG_BOSS_TUNED, async (batch) => {
      counts.set("tp-peer", (counts.get("tp-peer") ?? 0) + batch.length);
    });
    runners.push(
      await startGraphile(app.url, { tp_c4: async () => noop("tp_c4")() }, {
        concurrency: 4,
      }),
      await startGraphile(
        app.url,
        { tp_tuned: async () => noop("tp_tuned")() },
        GRAPHILE_TUNED,
      ),
    );
    const payload = (i: number) => ({ i });
    const variant = (
      name: string,
      key: string,
      enqueue: () => Promise<unknown>,
      remaining: () => Promise<number>,
      cleanup: () => Promise<unknown>,
    ): Variant => ({
      name,
      async sample() {
        counts.set(key, 0);
        const t0 = performance.now();
        await enqueue();
        const t1 = performance.now();
        await waitFor(
          `${name}: handlers`,
          () => Promise.resolve(counts.get(key)! >= n),
          300_000,
          2,
        );
        // The clock stops when the database says every job is completed.
        await waitFor(
          `${name}: completed`,
          async () => (await remaining()) === 0,
          60_000,
          2,
        );
        const t2 = performance.now();
        check(`${name}: handler calls`, counts.get(key)!, n);
        await cleanup();
        return { jobsPerSecond: n / ((t2 - t1) / 1000), enqueueMs: t1 - t0 };
      },
    });
    const ourRemaining = (queue: string) => async () =>
      (await countPgBoss(jobsSql, "pgboss", queue)) -
      (await countPgBoss(jobsSql, "pgboss", queue, "completed"));
    const variants: Variant[] = [
      variant(
        "aftercommit worker, defaults",
        "tp-defaults",
        () =>
          jobs.enqueueMany(
            Array.from(
              { length: n },
              (_, i) => ({ name: "tp-defaults", data: payload(i) }),
            ),
          ),
        ourRemaining("tp-defaults"),
        () => jobsSql`delete from pgboss.job where name = 'tp-defaults'`,
      ),
      variant(
        `aftercommit worker, tuned (${describeTuned()})`,
        "tp-tuned",
        () =>
          jobs.enqueueMany(
            Array.from(
              { length: n },
              (_, i) => ({ name: "tp-tuned", data: payload(i) }),
            ),
          ),
        ourRemaining("tp-tuned"),
        () => jobsSql`delete from pgboss.job where name = 'tp-tuned'`,
      ),
      variant(
        "graphile-worker, concurrency 4",
        "tp_c4",
        () =>
          utils.addJobs(
            Array.from(
              { length: n },
              (_, i) => ({ identifier: "tp_c4", payload: payload(i) }),
            ),
          ),
        () => countGraphile(sql, "tp_c4"),
        () => Promise.resolve(),
      ),
      variant(
        `graphile-worker, tuned (${describeGraphileTuned()})`,
        "tp_tuned",
        () =>
          utils.addJobs(
            Array.from(
              { length: n },
              (_, i) => ({ identifier: "tp_tuned", payload: payload(i) }),
            ),
          ),
        () => countGraphile(sql, "tp_tuned"),
        () => Promise.resolve(),
      ),
      variant(
        `pg-boss, tuned (${describePgBossTuned()})`,
        "tp-peer",
        () =>
          boss.insert(
            "tp-peer",
            Array.from({ length: n }, (_, i) => ({ data: payload(i) })),
          ),
        async () =>
          (await countPgBoss(sql, PEER_SCHEMA, "tp-peer")) -
          (await countPgBoss(sql, PEER_SCHEMA, "tp-peer", "completed")),
        () => sql`delete from ${sql(PEER_SCHEMA)}.job where name = 'tp-peer'`,
      ),
    ];
    const samples = await interleave(variants, config, log);
    const rows = variants.map((v) => v.name);
    return {
      id: "d_throughput",
      title: "(d) No-op job throughput, one worker process",
      description: `${
        n.toLocaleString("en-US")
      } jobs are inserted in one statement (each library's bulk API) into an idle, running worker in this process; the clock runs from the INSERT's commit until the database shows every job completed (pg-boss: state \`completed\`; graphile-worker: the job row deleted). The handler does nothing. Handler calls are counted and checked.`,
      metrics: [{
        key: "jobsPerSecond",
        label: "throughput",
        unit: "jobs/s",
        higherIsBetter: true,
      }],
      groups: [
        {
          title: "vs graphile-worker, concurrency 4",
          baseline: "graphile-worker, concurrency 4",
          rows,
        },
        { title: "vs pg-boss tuned", baseline: rows[4]!, rows },
      ],
      samples,
    };
  } finally {
    for (const r of runners) await stopGraphile(r);
    await jobs.stop();
    await boss.stop({ graceful: false, close: true });
    await utils.release();
    await sql.end();
    await jobsSql.end();
  }
}

/** The aftercommit worker options of the "tuned" rows. */
export const TUNED_WORKER = { batchSize: 100, concurrency: 4 } as const;
/** graphile-worker's tuned options. */
export const GRAPHILE_TUNED = {
  concurrency: 8,
  pollInterval: 100,
  localQueueSize: 100,
  completeJobBatchDelay: 0,
} as const;

function describeTuned(): string {
  return `batchSize ${TUNED_WORKER.batchSize}, concurrency ${TUNED_WORKER.concurrency}`;
}
function describeGraphileTuned(): string {
  return `concurrency ${GRAPHILE_TUNED.concurrency}, localQueue ${GRAPHILE_TUNED.localQueueSize}, completeJobBatchDelay 0, pollInterval ${GRAPHILE_TUNED.pollInterval} ms`;
}
function describePgBossTuned(): string {
  return `batchSize ${PG_BOSS_TUNED.batchSize}, localConcurrency ${PG_BOSS_TUNED.localConcurrency}, polling 0.5 s, burst`;
}

/** (b) commit → job start latency, from the COMMIT ack. */
export async function latencyBench(
  config: RunConfig,
  app: Database,
  jobsDb: Database,
  log: Log,
): Promise<Report> {
  const perSample = config.quick ? 20 : 200;
  const sql = postgres(app.url, { max: 4, onnotice: () => {} });
  await sql.unsafe(ITEMS_DDL);
  await migrateOutbox(sql);
  const jobs = await PgBossJobQueue.connect(jobsDb.url);
  const boss = await startPgBoss(app.url, PEER_SCHEMA);
  const utils = await graphileUtils(app.url);
  const started = new Map<number, (at: number) => void>();
  const onStart = (sample: number) => {
    const at = performance.now();
    started.get(sample)?.(at);
  };
  let nextSample = 0;
  const wait = (sample: number) =>
    new Promise<number>((resolve) => started.set(sample, resolve));
  let runner: Runner | undefined;
  try {
    const batching = new BatchingJobQueue(jobs);
    // The moment the Unit of Work hands its events to the bus: right after
    // it has received the COMMIT's answer.
    // The first hand-off after each commit counts (a batch, if the
    // publisher has one, comes before its publishAll); options such as the
    // outbox's signal pass through.
    let committedAt = 0;
    const stamp = () => {
      if (committedAt === 0) committedAt = performance.now();
    };
    const timed = (inner: EventPublisher): EventPublisher => ({
      publishAll(events, options) {
        stamp();
        return inner.publishAll(events, options);
      },
      ...(inner.batch === undefined ? {} : {
        batch<T>(work: () => Promise<T>): Promise<T> {
          stamp();
          return inner.batch!(work);
        },
      }),
    });
    const publisher = timed(
      batching.publisher(enqueueingBus(batching, "latency")),
    );
    await jobs.work<{ sample: number }>(
      "latency",
      (job) => onStart(job.data.sample),
    );
    const outboxUow = new PostgresUnitOfWork(sql, {
      bus: publisher,
      outbox: true,
    });
    const plainUow = new PostgresUnitOfWork(sql, { bus: publisher });
    await pgBossQueue(boss, "latency-peer");
    await boss.work<{ sample: number }>(
      "latency-peer",
      { pollingIntervalSeconds: 0.5 },
      async ([job]) => onStart(job!.data.sample),
    );
    runner = await startGraphile(app.url, {
      latency: async (payload) =>
        onStart((payload as { sample: number }).sample),
    }, { concurrency: 4, pollInterval: 100 });

    const measure = async (
      commit: (sample: number) => Promise<number>,
    ): Promise<Record<string, number>> => {
      const latencies: number[] = [];
      for (let i = 0; i < perSample; i++) {
        const sample = nextSample++;
        if (Deno.env.get("BENCH_DEBUG")) log(`sample ${sample}`);
        const startedAt = wait(sample);
        const at = await commit(sample);
        latencies.push((await startedAt) - at);
        started.delete(sample);
        // An idle gap, as between requests.
        await new Promise((r) => setTimeout(r, 1 + Math.random() * 4));
      }
      const sorted = latencies.sort((a, b) => a - b);
      return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
    };
    const ourCommit =
      (uow: PostgresUnitOfWork<postgres.Sql>) => async (sample: number) => {
        committedAt = 0;
        await uow.run(async (tx) => {
          const item = tx.track(Item.create(`item ${sample}`, sample));
          await tx
            .sql`insert into items (id, name) values (${item.id}, ${item.name})`;
        });
        return committedAt;
      };
    const variants: Variant[] = [
      {
        name: "aftercommit outbox mode → bus → BatchingJobQueue → worker",
        sample: () => measure(ourCommit(outboxUow)),
      },
      {
        name: "aftercommit plain mode → bus → BatchingJobQueue → worker",
        sample: () => measure(ourCommit(plainUow)),
      },
      {
        name: "graphile-worker add_job in the app transaction",
        sample: () =>
          measure(async (sample) => {
            await sql.begin(async (tx) => {
              await tx`insert into items (id, name) values (${crypto.randomUUID()}, ${`item ${sample}`})`;
              await tx`select graphile_worker.add_job('latency', ${
                tx.json({ sample })
              }::json)`;
            });
            return performance.now();
          }),
      },
      {
        name:
          "pg-boss insert in the app transaction (LISTEN/NOTIFY, polling 0.5 s)",
        sample: () =>
          measure(async (sample) => {
            await sql.begin(async (tx) => {
              await tx`insert into items (id, name) values (${crypto.randomUUID()}, ${`item ${sample}`})`;
              await boss.insert("latency-peer", [{ data: { sample } }], {
                db: txExecutor(tx),
              });
            });
            return performance.now();
          }),
      },
    ];
    const samples = await interleave(variants, config, log);
    const rows = variants.map((v) => v.name);
    return {
      id: "b_latency",
      title: "(b) Commit → job start",
      description:
        `${perSample} sequential requests per sample, 1–5 ms apart; each commits one item and one job, and a worker in the same process starts the job. Clock: from the COMMIT's answer (for aftercommit, the moment the Unit of Work hands the events to the bus, right after its COMMIT; for the peers, \`sql.begin\` resolving) to the job handler's first line. aftercommit's jobs live in a separate jobs database (pg-boss schema, LISTEN/NOTIFY plus a direct wake-up of local workers, worker defaults); graphile-worker's \`add_job\` and pg-boss's \`insert\` (its \`db\` option) run inside the app transaction, on the app database. Each sample's p50 and p99 are taken over its requests; the table shows their median (min–max) over the repeats.`,
      metrics: [
        { key: "p50", label: "p50", unit: "ms" },
        { key: "p99", label: "p99", unit: "ms" },
      ],
      groups: [{ title: "", baseline: rows[2]!, rows }],
      samples,
    };
  } finally {
    if (runner !== undefined) await stopGraphile(runner);
    await jobs.stop();
    await boss.stop({ graceful: false, close: true });
    await utils.release();
    await sql.end();
  }
}
