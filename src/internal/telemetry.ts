// OpenTelemetry through `@opentelemetry/api` only; the application (or
// OTEL_DENO) installs the SDK. Attributes and errors name types, never values.
import {
  type Context,
  context,
  type Counter,
  type Histogram,
  type Meter,
  metrics,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Tracer,
} from "@opentelemetry/api";
import { errorType } from "./loggable_error.ts";

/** The library's version, as the tracer's instrumentation scope version. */
export const VERSION = "0.1.0";

/** The library's tracer; not cached, as the proxy binds to the first provider. */
export function tracer(): Tracer {
  return trace.getTracer("aftercommit", VERSION);
}

// Where @opentelemetry/api 1.x (and Deno's OTel) keep the globals. The holder
// is cached: once there it stays, and a symbol read costs 1/8 of a publish.
const API_KEY = Symbol.for("opentelemetry.js.api.1");
type Holder = { trace?: unknown; metrics?: unknown };
const globals = globalThis as { [API_KEY]?: Holder };
// A symbol globalThis lacks is 20-50x slower to read: hold the key's place.
if (!(API_KEY in globals)) {
  Object.defineProperty(globals, API_KEY, {
    writable: true,
    configurable: true,
  });
}
let holder: Holder | undefined = globals[API_KEY];

/** Whether a tracer provider is registered: without one, spans are skipped. */
export function tracing(): boolean {
  return (holder ??= globals[API_KEY])?.trace !== undefined;
}

function metering(): boolean {
  return (holder ??= globals[API_KEY])?.metrics !== undefined;
}

/** The library's instruments (see {@linkcode meters}); durations in s. */
export interface Instruments {
  readonly dispatchDuration: Histogram;
  readonly jobDuration: Histogram;
  readonly jobStartDelay: Histogram;
  readonly failures: Counter;
}

/** The library's meter when a meter provider is registered, else `undefined`. */
export function meter(): Meter | undefined {
  return metering()
    ? metrics.getMeterProvider().getMeter("aftercommit", VERSION)
    : undefined;
}

// In seconds: the SDK's default buckets are made for milliseconds.
// deno-fmt-ignore
const DURATION = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
let cache: [provider: unknown, instruments: Instruments] | undefined;

/**
 * The library's instruments when a meter provider is registered, else
 * `undefined`; made again when the provider changes (an API meter is no proxy).
 */
export function meters(): Instruments | undefined {
  if (!metering()) return undefined;
  const provider = metrics.getMeterProvider();
  if (cache?.[0] === provider) return cache[1];
  const meter = provider.getMeter("aftercommit", VERSION);
  const seconds = (name: string, description: string, buckets = DURATION) =>
    meter.createHistogram(`aftercommit.${name}`, {
      description,
      unit: "s",
      advice: { explicitBucketBoundaries: buckets },
    });
  cache = [provider, {
    dispatchDuration: seconds(
      "outbox.dispatch.duration",
      "Duration of one outbox dispatch (all its handlers)",
    ),
    jobDuration: seconds("job.duration", "Duration of one job attempt"),
    jobStartDelay: seconds(
      "job.start_delay",
      "From a job's enqueue (or its startAfter, if later) to the start of its first attempt (the commit to job start latency)",
      [...DURATION, 30, 60, 300, 900, 3600],
    ),
    failures: meter.createCounter("aftercommit.failures", {
      description:
        "Failed handlers, outbox dispatches and job attempts, by error type",
      unit: "{failure}",
    }),
  }];
  return cache[1];
}

export { type Span, SpanKind };

/** Marks `span` failed with the error's type only (no message: PII). */
export function recordError(span: Span, error: unknown): void {
  const type = errorType(error);
  span.setAttribute("error.type", type);
  span.addEvent("exception", { "exception.type": type });
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** Options of {@linkcode inSpan}: the span's, and its parent context. */
export interface InSpanOptions extends SpanOptions {
  /** Parent context; the active one by default. */
  parent?: Context | undefined;
}

/** Runs `fn` in a new active span, recording a failure by its type. */
export async function inSpan<T>(
  name: string,
  options: InSpanOptions,
  fn: (span: Span) => T | PromiseLike<T>,
): Promise<T> {
  const { parent = context.active(), kind = SpanKind.INTERNAL, ...rest } =
    options;
  const span = tracer().startSpan(name, { kind, ...rest }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), fn, undefined, span);
  } catch (error) {
    recordError(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** The active span's context when it is valid, else `undefined`. */
export function activeSpanContext(): SpanContext | undefined {
  const c = trace.getActiveSpan()?.spanContext();
  return c && trace.isSpanContextValid(c) ? c : undefined;
}

/** The W3C `traceparent` of the active span, if valid. */
export function activeTraceparent(): string | undefined {
  const c = tracing() ? activeSpanContext() : undefined;
  const flags = c && (c.traceFlags & 0xff).toString(16).padStart(2, "0");
  return c && `00-${c.traceId}-${c.spanId}-${flags}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A context whose remote parent is `traceparent`, if it is well-formed. */
export function contextFromTraceparent(
  traceparent: unknown,
): Context | undefined {
  const m = typeof traceparent === "string" && TRACEPARENT.exec(traceparent);
  const spanContext = m && {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return spanContext && trace.isSpanContextValid(spanContext)
    ? trace.setSpanContext(ROOT_CONTEXT, spanContext)
    : undefined;
}

/** Common attributes of the library's messaging spans. */
export const MESSAGING_SYSTEM: string = "aftercommit";
