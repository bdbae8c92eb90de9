// The library's histograms are in seconds, so their buckets must be too:
// with the SDK's default boundaries (0, 5, 10, 25 … 10000, made for
// milliseconds) every dispatch, job and start delay under five seconds
// falls in the same bucket, and no percentile can be read from them.
import assert from "node:assert/strict";
import { metrics } from "@opentelemetry/api";
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { meters } from "../../../src/internal/telemetry.ts";

class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("the duration histograms tell 2 ms, 30 ms, 300 ms and 3 s apart", async (t) => {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(provider);
  try {
    const instruments = meters();
    assert.ok(instruments !== undefined, "a meter provider is registered");
    const values = [0.002, 0.03, 0.3, 3];
    for (const value of values) {
      instruments.dispatchDuration.record(value);
      instruments.jobDuration.record(value);
      instruments.jobStartDelay.record(value);
    }
    const { resourceMetrics } = await reader.collect();
    const byName = new Map(
      resourceMetrics.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .map((metric) => [
          metric.descriptor.name,
          metric.dataPoints as DataPoint<Histogram>[],
        ]),
    );
    for (
      const name of [
        "aftercommit.outbox.dispatch.duration",
        "aftercommit.job.duration",
        "aftercommit.job.start_delay",
      ]
    ) {
      await t.step(name, () => {
        const [point] = byName.get(name) ?? [];
        assert.ok(point !== undefined, `${name} was recorded`);
        const { counts } = point.value.buckets;
        assert.equal(point.value.count, values.length);
        // Four values, four buckets holding one each.
        assert.deepEqual(
          counts.filter((count) => count > 0),
          [1, 1, 1, 1],
          `bucket counts ${JSON.stringify(counts)} for boundaries ${
            JSON.stringify(point.value.buckets.boundaries)
          }`,
        );
      });
    }
  } finally {
    metrics.disable();
    await provider.shutdown();
  }
});
