// What one dashboard refresh costs the jobs database: PgBossJobQueue.stats()
// over 100,000 stored jobs (about 90,000 completed, the rest waiting), on the
// server at BENCH_JOB_QUEUE_DATABASE_URL (a throwaway database: the jobs
// stay). The first run stores the jobs and exits; the next ones measure.
//
//   createdb -h 127.0.0.1 -U postgres aftercommit_dash_bench
//   deno run -A --frozen bench/dashboard_stats.ts   # twice
import { PgBossJobQueue } from "../src/adapters/pg-boss/mod.ts";

const url = Deno.env.get("BENCH_JOB_QUEUE_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/aftercommit_dash_bench";
await using jobs = await PgBossJobQueue.connect(url, { supervise: false });
const queue = "dashboard-bench";
const stored = (await jobs.stats()).queues.find((q) => q.name === queue);
if (stored === undefined || stored.created === 0) {
  for (let i = 0; i < 100; i++) {
    await jobs.enqueueMany(
      Array.from({ length: 1000 }, (_, n) => ({
        name: queue,
        data: { n: i * 1000 + n },
      })),
    );
  }
  let done = 0;
  const finished = Promise.withResolvers<void>();
  await jobs.work(queue, () => {
    if (++done === 90_000) finished.resolve();
  }, { batchSize: 500, concurrency: 1 });
  await finished.promise;
  await jobs.stop();
  Deno.exit(0); // run again to measure with the jobs in place
}
const times: number[] = [];
for (let i = 0; i < 21; i++) {
  const started = performance.now();
  await jobs.stats({ windowSeconds: 2 });
  times.push(performance.now() - started);
}
times.sort((a, b) => a - b);
// deno-lint-ignore no-console
console.log(
  `stats() over ${stored.created} waiting jobs and about ${
    100_000 - stored.created
  } completed: median ${times[10]!.toFixed(1)} ms, max ${
    times[20]!.toFixed(1)
  } ms`,
);
