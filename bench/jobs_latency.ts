// deno-lint-ignore-file no-console -- a script that reports its figures
// The job queue's speed on a PostgreSQL server, in one run:
//
// 1. latency from enqueue (the commit of the job's INSERT) to the handler
//    starting, with the worker in the same process: this adapter (LISTEN/
//    NOTIFY and a direct wake-up of local workers) against pg-boss's default
//    polling;
// 2. enqueue throughput when one publishAll() makes 1,000 jobs (an @On
//    handler enqueues one keyed job per event) through BatchingJobQueue's
//    publisher, against a loop of 1,000 single pg-boss send() calls (raw
//    pg-boss, its own schema); also, for reference, the same publishAll()
//    without batching (one adapter enqueue() per handler), and one
//    enqueueMany() against 1,000 adapter enqueue() calls;
// 3. processing throughput with a no-op handler.
//
// Run: deno run -A --frozen bench/jobs_latency.ts
// The server is BENCH_JOB_QUEUE_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres); the script creates its own
// database there and drops it at the end.
import postgres from "postgres";
import { PgBoss } from "pg-boss";
import {
  BatchingJobQueue,
  DomainEvent,
  EventBus,
  type JobQueue,
  On,
} from "../mod.ts";
import { PgBossJobQueue } from "../src/adapters/pg-boss/mod.ts";

const serverUrl = Deno.env.get("BENCH_JOB_QUEUE_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const LATENCY_SAMPLES = 500;
const POLLING_SAMPLES = 20;
const ENQUEUE_JOBS = 1_000;
const PROCESS_JOBS = 20_000;

const ROUNDS = 5;

class UserRegistered extends DomainEvent {
  constructor(readonly userId: string) {
    super();
  }
}

function welcomeBus(jobs: JobQueue, queue: string): EventBus {
  class Welcome {
    @On(UserRegistered)
    async enqueue(e: UserRegistered): Promise<void> {
      await jobs.enqueue(queue, { userId: e.userId }, { key: e.eventId });
    }
  }
  const bus = new EventBus();
  bus.subscribe(new Welcome());
  return bus;
}

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

  // 2. Enqueue throughput of one publishAll() that makes 1,000 jobs.
  {
    await using adapter = await PgBossJobQueue.connect(dbUrl, {
      supervise: false,
    });
    const batching = new BatchingJobQueue(adapter);
    const batched = batching.publisher(welcomeBus(batching, "publish-batched"));
    const unbatched = welcomeBus(adapter, "publish-unbatched");
    const boss = new PgBoss({
      connectionString: dbUrl,
      schema: "pgboss_raw",
      supervise: false,
      schedule: false,
    });
    boss.on("error", (e) => console.error("pg-boss error", e));
    await boss.start();
    await boss.createQueue("send-loop");
    // Warm up connections and query plans on every path.
    await batched.publishAll([new UserRegistered("warmup")]);
    await unbatched.publishAll([new UserRegistered("warmup")]);
    await boss.send("send-loop", { warmup: true });
    await adapter.enqueue("enqueue-single", { warmup: true });
    await adapter.enqueueMany([{ name: "enqueue-many", data: { warmup: 1 } }]);

    const times = {
      batched: [] as number[],
      send: [] as number[],
      unbatched: [] as number[],
      many: [] as number[],
      single: [] as number[],
    };
    const fresh = () =>
      Array.from(
        { length: ENQUEUE_JOBS },
        (_, i) => new UserRegistered(`user-${i}`),
      );
    // Rounds of fresh keyed jobs, the paths alternating; the medians count.
    for (let round = 0; round < ROUNDS; round++) {
      let events = fresh();
      let t0 = performance.now();
      await batched.publishAll(events);
      times.batched.push(performance.now() - t0);

      events = fresh();
      t0 = performance.now();
      for (const e of events) {
        await boss.send("send-loop", { userId: e.userId }, {
          id: PgBossJobQueue.jobIdFor("send-loop", e.eventId),
        });
      }
      times.send.push(performance.now() - t0);

      events = fresh();
      t0 = performance.now();
      await unbatched.publishAll(events);
      times.unbatched.push(performance.now() - t0);

      events = fresh();
      t0 = performance.now();
      const ids = await adapter.enqueueMany(events.map((e) => ({
        name: "enqueue-many",
        data: { userId: e.userId },
        options: { key: e.eventId },
      })));
      times.many.push(performance.now() - t0);
      if (ids.some((id) => id === null)) {
        throw new Error("a job was not created");
      }

      events = fresh();
      t0 = performance.now();
      for (const e of events) {
        await adapter.enqueue("enqueue-single", { userId: e.userId }, {
          key: e.eventId,
        });
      }
      times.single.push(performance.now() - t0);
    }
    await boss.stop();
    const median = (xs: number[]) => summary(xs).p50;
    const rate = (t: number) => Math.round(ENQUEUE_JOBS / (t / 1000));
    const show = (t: number) => `${ms(t)} (${rate(t)} jobs/s)`;
    const batchedT = median(times.batched);
    const sendT = median(times.send);
    const unbatchedT = median(times.unbatched);
    const manyT = median(times.many);
    const singleT = median(times.single);
    console.log(
      `2. one publishAll() of ${ENQUEUE_JOBS} events, one keyed job each (median of ${ROUNDS}): batching publisher ${
        show(batchedT)
      } vs a loop of ${ENQUEUE_JOBS} pg-boss send() ${show(sendT)}: ${
        (sendT / batchedT).toFixed(1)
      }× (target ≥ 20×)`,
    );
    console.log(
      `   for reference: the same publishAll() without batching ${
        show(unbatchedT)
      } (${
        (unbatchedT / batchedT).toFixed(1)
      }× slower than batched); enqueueMany ${
        show(manyT)
      } vs ${ENQUEUE_JOBS}× adapter enqueue ${show(singleT)}: ${
        (singleT / manyT).toFixed(1)
      }×`,
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
