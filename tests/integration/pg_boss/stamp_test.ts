// The trace context and enqueue time a traced or metered process adds to a
// job's data are removed before any handler sees the data, also in a worker
// whose process has no telemetry (a web process with tracing, a worker
// without it).
import assert from "node:assert/strict";
import { context, metrics, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";

Deno.test("pg-boss job queue: a worker without telemetry gets the data as enqueued, without the stamp", async () => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect();
  const queue = uniqueQueueName("stamped");
  const data = { userId: "u1", tags: ["a"] };

  // Enqueued in a traced span, with a meter provider: the row is stamped.
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
  });
  trace.setGlobalTracerProvider(tracerProvider);
  const meterProvider = new MeterProvider();
  metrics.setGlobalMeterProvider(meterProvider);
  try {
    await trace.getTracer("stamp-test").startActiveSpan(
      "POST /users",
      async (span) => {
        await jobs.enqueue(queue, data);
        span.end();
      },
    );
  } finally {
    trace.disable();
    metrics.disable();
    context.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  }
  const [row] = await db.query(
    "select data::text as data from pgboss.job where name = $1",
    [queue],
  );
  const text = String(row?.data);
  const stored = JSON.parse(text);
  assert.equal(typeof stored["aftercommit.traceparent"], "string", text);
  assert.equal(typeof stored["aftercommit.enqueuedAt"], "number", text);

  // The worker runs with telemetry off.
  const received = new Collector<unknown>();
  await jobs.work(queue, (job) => void received.push(job.data));
  const [got] = await received.atLeast(1, "the stamped job");
  assert.deepEqual(got, data);
});
