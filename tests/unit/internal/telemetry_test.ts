// The telemetry helpers with the real SDK (in-memory exporter): spans go to
// the provider registered now, a failure is recorded by its type only, and
// the W3C traceparent the outbox and the jobs carry round-trips.
import assert from "node:assert/strict";
import { context, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  activeTraceparent,
  contextFromTraceparent,
  inSpan,
  tracing,
} from "../../../src/internal/telemetry.ts";

function register(): { exporter: InMemorySpanExporter } & Disposable {
  const exporter = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    }),
  );
  return { exporter, [Symbol.dispose]: () => trace.disable() };
}

Deno.test("telemetry helpers with the OpenTelemetry SDK", async (t) => {
  context.setGlobalContextManager(
    new AsyncLocalStorageContextManager().enable(),
  );
  try {
    await t.step(
      "without a tracer provider: no tracing, no traceparent",
      () => {
        assert.equal(tracing(), false);
        assert.equal(activeTraceparent(), undefined);
      },
    );

    await t.step(
      "spans go to the provider registered now, also one registered after another was removed",
      async () => {
        {
          using first = register();
          assert.equal(tracing(), true);
          await inSpan("first", {}, () => {});
          assert.deepEqual(
            first.exporter.getFinishedSpans().map((s) => s.name),
            [
              "first",
            ],
          );
        }
        assert.equal(tracing(), false);
        using second = register();
        await inSpan("second", {}, () => {});
        assert.deepEqual(
          second.exporter.getFinishedSpans().map((s) => s.name),
          ["second"],
        );
      },
    );

    await t.step(
      "a failure is recorded by its type, never its message",
      async () => {
        using sdk = register();
        await assert.rejects(
          inSpan("fails", {}, () => {
            throw new TypeError("cannot mail grace@example.org");
          }),
          TypeError,
        );
        const [span] = sdk.exporter.getFinishedSpans();
        assert.equal(span?.status.code, SpanStatusCode.ERROR);
        assert.equal(span.status.message, "TypeError");
        assert.equal(span.attributes["error.type"], "TypeError");
        assert.deepEqual(
          span.events.map((e) => [e.name, e.attributes]),
          [["exception", { "exception.type": "TypeError" }]],
        );
        assert.ok(
          !JSON.stringify([span.attributes, span.events, span.status])
            .includes("grace"),
        );
      },
    );

    await t.step(
      "the active span's traceparent round-trips into a remote parent",
      async () => {
        using sdk = register();
        let carried: string | undefined;
        await inSpan("writer", {}, () => {
          carried = activeTraceparent();
        });
        const [writer] = sdk.exporter.getFinishedSpans();
        const { traceId, spanId } = writer!.spanContext();
        assert.equal(carried, `00-${traceId}-${spanId}-01`);
        // Later, maybe in another process: the stored context is the parent.
        await inSpan(
          "reader",
          { parent: contextFromTraceparent(carried) },
          () => {},
        );
        const reader = sdk.exporter.getFinishedSpans()[1]!;
        assert.equal(reader.spanContext().traceId, traceId);
        assert.equal(reader.parentSpanContext?.spanId, spanId);
        assert.equal(reader.parentSpanContext?.isRemote, true);
      },
    );

    await t.step("a missing or malformed traceparent gives no context", () => {
      for (
        const value of [
          undefined,
          null,
          42,
          "",
          "00-abc-def-01",
          `01-${"a".repeat(32)}-${"b".repeat(16)}-01`,
          `00-${"0".repeat(32)}-${"b".repeat(16)}-01`, // all-zero trace id
          `00-${"A".repeat(32)}-${"b".repeat(16)}-01`, // upper case
        ]
      ) {
        assert.equal(contextFromTraceparent(value), undefined, String(value));
      }
    });
  } finally {
    context.disable();
  }
});
