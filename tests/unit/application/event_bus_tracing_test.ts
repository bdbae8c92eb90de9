import assert from "node:assert/strict";
import { trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { EventBus } from "../../../mod.ts";

class Pinged {}

Deno.test("publish() traces once a tracer provider is registered, even after its handlers were first resolved without one", async () => {
  const bus = new EventBus();
  bus.register(Pinged, () => {});
  await bus.publish(new Pinged()); // no provider yet: no span, handlers cached
  const exporter = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    }),
  );
  try {
    await bus.publish(new Pinged());
    const names = exporter.getFinishedSpans().map((s) => s.name);
    assert.ok(names.length > 0, "publish() made no span");
    exporter.reset();
    trace.disable();
    await bus.publish(new Pinged());
    assert.deepEqual(exporter.getFinishedSpans(), [], "no span once disabled");
  } finally {
    trace.disable();
  }
});
