// deno-lint-ignore-file no-console -- a script that reports its figures
// The job queue's speed on a PostgreSQL server, in one run:
//
// 1. latency from enqueue (the commit of the job's INSERT) to the handler
//    starting, with the worker in the same process: this adapter (LISTEN/
//    NOTIFY and a direct wake-up of local workers) against pg-boss's default
//    polling;
// 2. enqueue throughput of 1,000 jobs: one enqueueMany() against a loop of
//    1,000 single enqueue() calls (each one pg-boss send());
// 3. processing throughput with a no-op handler.
//
// Run: deno run -A --frozen bench/jobs_latency.ts
// The server is BENCH_JOB_QUEUE_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres); the script creates its own
// database there and drops it at the end.
import postgres from "postgres";
import { PgBoss } from "pg-boss";
import { PgBossJobQueue } from "../src/adapters/pg-boss/mod.ts";

const serverUrl = Deno.env.get("BENCH_JOB_QUEUE_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const LATENCY_SAMPLES = 500;
const POLLING_SAMPLES = 20;
const ENQUEUE_JOBS = 1_000;
const PROCESS_JOBS = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  const i = Math.min(
    sorted.length - 1,
    Math.ceil((p / 100) * sorted.length) - 1,
  );
  return sorted[Math.max(0, i)]!;
}

function summary(samples: number[]): { p50: number; p99: number; max: number } {
  const sorted = samples.toSorted((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1)!,
  };
}

const ms = (n: number) => `${n.toFixed(2)} ms`;

// Enqueues one job at a time, waiting for its handler to start before the
// next (with a random idle gap, as between requests), and returns the
// latencies from the enqueue call to the handler's first line.
async function measureLatency(
  samples: number,
  enqueue: (n: number) => Promise<unknown>,
  onStart: (listener: (n: number) => void) => void,
  gapMs: () => number,
): Promise<number[]> {
  const latencies: number[] = [];
  let waiting: { n: number; t0: number; done: () => void } | undefined;
  onStart((n) => {
    const now = performance.now();
    if (waiting?.n === n) {
      latencies.push(now - waiting.t0);
      waiting.done();
    }
  });
  for (let n = 0; n < samples; n++) {
    await sleep(gapMs());
    const { promise, resolve } = Promise.withResolvers<void>();
    waiting = { n, t0: performance.now(), done: resolve };
    await enqueue(n);
    await promise;
  }
  return latencies;
}

const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
const dbName = `aftercommit_jobs_bench_${
  crypto.randomUUID().replaceAll("-", "").slice(0, 12)
}`;
await admin.unsafe(`create database "${dbName}"`);
const url = new URL(serverUrl);
url.pathname = `/${dbName}`;
const dbUrl = url.href;

try {
  console.log(`Server: ${new URL(serverUrl).host}, database ${dbName}`);

  // 1a. This adapter.
  {
    await using jobs = await PgBossJobQueue.connect(dbUrl, {
      supervise: false,
    });
    let listener: (n: number) => void = () => {};
    await jobs.work<{ n: number }>("latency", (job) => listener(job.data.n));
    // Warm up: the first jobs pay for connections and query plans.
    for (let i = 0; i < 20; i++) await jobs.enqueue("latency-warmup", { i });
    const latencies = await measureLatency(
      LATENCY_SAMPLES,
      (n) => jobs.enqueue("latency", { n }),
      (l) => listener = l,
      () => Math.random() * 5,
    );
    const s = summary(latencies);
    console.log(
      `1. enqueue→handler start, this adapter (${LATENCY_SAMPLES} jobs): p50 ${
        ms(s.p50)
      }, p99 ${ms(s.p99)}, max ${ms(s.max)}`,
    );
  }

  // 1b. pg-boss with its defaults: polling every 2 s, no LISTEN/NOTIFY.
  {
    const boss = new PgBoss({
      connectionString: dbUrl,
      schema: "pgboss_default",
      supervise: false,
      schedule: false,
    });
    boss.on("error", (e) => console.error("pg-boss error", e));
    await boss.start();
    await boss.createQueue("latency");
    let listener: (n: number) => void = () => {};
    await boss.work<{ n: number }>("latency", ([job]) => {
      listener(job!.data.n);
      return Promise.resolve();
    });
    const latencies = await measureLatency(
      POLLING_SAMPLES,
      (n) => boss.send("latency", { n }),
      (l) => listener = l,
      () => Math.random() * 500,
    );
    await boss.stop();
    const s = summary(latencies);
    console.log(
      `   enqueue→handler start, pg-boss default polling (${POLLING_SAMPLES} jobs): p50 ${
        ms(s.p50)
      }, p99 ${ms(s.p99)}, max ${ms(s.max)}`,
    );
  }

  // 2. Enqueue throughput: one enqueueMany() against 1,000 enqueue() calls.
  {
    await using jobs = await PgBossJobQueue.connect(dbUrl, {
      supervise: false,
    });
    await jobs.enqueue("enqueue-single", { warmup: true });
    await jobs.enqueueMany([{ name: "enqueue-many", data: { warmup: true } }]);
    const singles: number[] = [];
    const manys: number[] = [];
    // Three rounds, alternating, of fresh keyed jobs; the medians count.
    for (let round = 0; round < 3; round++) {
      const events = Array.from({ length: ENQUEUE_JOBS }, (_, i) => ({
        eventId: crypto.randomUUID(),
        userId: `user-${i}`,
      }));
      let t0 = performance.now();
      for (const e of events) {
        await jobs.enqueue("enqueue-single", { userId: e.userId }, {
          key: e.eventId,
        });
      }
      singles.push(performance.now() - t0);

      t0 = performance.now();
      const ids = await jobs.enqueueMany(events.map((e) => ({
        name: "enqueue-many",
        data: { userId: e.userId },
        options: { key: e.eventId },
      })));
      manys.push(performance.now() - t0);
      if (ids.some((id) => id === null)) {
        throw new Error("a job was not created");
      }
    }
    const single = summary(singles).p50;
    const many = summary(manys).p50;
    const rate = (t: number) => Math.round(ENQUEUE_JOBS / (t / 1000));
    console.log(
      `2. enqueue ${ENQUEUE_JOBS} keyed jobs (median of 3): enqueueMany ${
        ms(many)
      } (${rate(many)} jobs/s) vs ${ENQUEUE_JOBS}× enqueue ${ms(single)} (${
        rate(single)
      } jobs/s): ${(single / many).toFixed(1)}×`,
    );
  }

  // 3. Processing throughput with a no-op handler.
  {
    await using jobs = await PgBossJobQueue.connect(dbUrl, {
      supervise: false,
    });
    for (let i = 0; i < PROCESS_JOBS; i += 1_000) {
      await jobs.enqueueMany(
        Array.from({ length: 1_000 }, (_, j) => ({
          name: "noop",
          data: { n: i + j },
        })),
      );
    }
    let done = 0;
    const { promise, resolve } = Promise.withResolvers<void>();
    const t0 = performance.now();
    await jobs.work("noop", () => {
      if (++done === PROCESS_JOBS) resolve();
    }, { batchSize: 200, concurrency: 4 });
    await promise;
    const elapsed = performance.now() - t0;
    console.log(
      `3. process ${PROCESS_JOBS} jobs, no-op handler (batchSize 200, concurrency 4): ${
        ms(elapsed)
      }, ${Math.round(PROCESS_JOBS / (elapsed / 1000))} jobs/s`,
    );
  }
} finally {
  await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
  await admin.end();
}
