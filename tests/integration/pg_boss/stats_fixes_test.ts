// PgBossJobQueue.stats() on a schema named with capitals (pg-boss writes it
// unquoted, folded to lower case), and the start latency of a delayed job,
// in stats() and in the aftercommit.job.start_delay metric: from the job's
// start-after time, not from its enqueue; and a retried dead letter's, from
// its retry.
import assert from "node:assert/strict";
import { metrics } from "@opentelemetry/api";
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { openJobsDatabase, uniqueQueueName } from "../../_helpers/jobs_db.ts";
import { waitFor, waitUntil } from "../../_helpers/poll.ts";

/** The start delays (s) the metric recorded for `queue`. */
async function startDelays(
  reader: MetricReader,
  queue: string,
): Promise<Histogram[]> {
  const { resourceMetrics } = await reader.collect();
  return resourceMetrics.scopeMetrics
    .flatMap((scope) => scope.metrics)
    .filter((m) => m.descriptor.name === "aftercommit.job.start_delay")
    .flatMap((m) => m.dataPoints as DataPoint<Histogram>[])
    .filter((p) => p.attributes["messaging.destination.name"] === queue)
    .map((p) => p.value);
}

/** A reader the test collects from when it wants. */
class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("pg-boss job queue: stats() reads a schema named with capitals", async () => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect({ schema: "JobsV2" });
  const queue = uniqueQueueName("stats-schema");
  await jobs.enqueue(queue, { n: 1 });
  const { queues, window } = await jobs.stats();
  assert.deepEqual(queues.find((q) => q.name === queue), {
    name: queue,
    created: 1,
    retry: 0,
    active: 0,
    failed: 0,
    deadLetters: 0,
  });
  assert.equal(window.completed, 0);
  assert.deepEqual(await jobs.deadLetters(), []);
});

Deno.test("pg-boss job queue: a delayed job's start latency counts from its start-after time", async (t) => {
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(meterProvider);
  try {
    await using db = await openJobsDatabase();
    await using jobs = await db.connect();
    const queue = uniqueQueueName("stats-delayed");
    const started = Promise.withResolvers<void>();
    await jobs.work(queue, () => started.resolve(), {
      pollingIntervalSeconds: 0.5,
    });
    const enqueuedAt = Date.now();
    await jobs.enqueue(queue, { n: 1 }, { startAfter: 2 });
    await waitFor(started.promise, "the delayed job's start");
    assert.ok(Date.now() - enqueuedAt >= 1900, "it waited for its delay");

    await t.step("stats(): p50 and p99 leave the delay out", async () => {
      let window = (await jobs.stats({ windowSeconds: 60 })).window;
      await waitUntil("the delayed job's completion", async () => {
        window = (await jobs.stats({ windowSeconds: 60 })).window;
        return window.measured === 1;
      });
      // Started within a poll (0.5 s) of its start-after time; before, the
      // 2 s delay was counted in.
      for (const ms of [window.startLatencyP50Ms, window.startLatencyP99Ms]) {
        assert.ok(ms !== null && ms >= 0 && ms < 1500, `latency ${ms} ms`);
      }
    });

    await t.step(
      "the aftercommit.job.start_delay metric leaves it out",
      async () => {
        const delays = await startDelays(reader, queue);
        assert.equal(delays.length, 1);
        const { count, sum } = delays[0]!;
        assert.equal(count, 1);
        assert.ok(sum !== undefined && sum >= 0 && sum < 1.5, `delay ${sum} s`);
      },
    );
  } finally {
    await meterProvider.shutdown();
    metrics.disable();
  }
});

Deno.test("pg-boss job queue: a retried dead letter's start delay counts from its retry", async () => {
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(meterProvider);
  try {
    await using db = await openJobsDatabase();
    const queue = uniqueQueueName("stats-redrive");
    await using jobs = await db.connect({
      queues: { [queue]: { retryLimit: 0 } },
    });
    let fail = true;
    const ran = Promise.withResolvers<void>();
    await jobs.work(queue, () => {
      if (fail) throw new Error("down");
      ran.resolve();
    }, { pollingIntervalSeconds: 0.5 });
    await jobs.enqueue(queue, { n: 1 });
    await waitUntil(
      "the dead letter",
      async () => (await jobs.countDeadLetters({ queue })) === 1,
    );
    // As if it had waited an hour for an operator.
    const [row] = await db.query(
      `update pgboss.job set data = jsonb_set(data,
         '{aftercommit.enqueuedAt}', to_jsonb($2::float8))
       where name = $1 returning id`,
      [`${queue}__dead`, Date.now() - 3_600_000],
    );
    assert.ok(row, "the dead letter carries the enqueue stamp");
    fail = false;
    assert.equal(await jobs.retryDeadLetters({ queue }), 1);
    await waitFor(ran.promise, "the retried job");
    // One histogram: the first attempt and the retry.
    const [delays, ...more] = await startDelays(reader, queue);
    assert.deepEqual([delays?.count, more], [2, []]);
    assert.ok(delays!.max! < 60, `the longest delay: ${delays!.max} s`);
  } finally {
    await meterProvider.shutdown();
    metrics.disable();
  }
});
