// OpenTelemetry through `@opentelemetry/api` only: the application (or
// Deno's built-in OTel, `OTEL_DENO=true`) installs the SDK. With none
// installed every API call is a no-op, but still costs allocations on the
// bus's hot path, so `tracing()` answers "is any tracer provider
// registered?" with two property reads and the callers skip their spans.
// Attributes name event types, handlers, queues and ids, never field values;
// an error is recorded by its type (name), never its message, which may
// quote values.
import {
  type Attributes,
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
  SpanStatusCode,
  trace,
  TraceFlags,
  type Tracer,
} from "@opentelemetry/api";
import { errorType } from "./loggable_error.ts";

/** The library's version, as the tracer's instrumentation scope version. */
export const VERSION = "0.1.0";

/**
 * The library's tracer, from the tracer provider registered now. Not kept
 * in a constant: the API's proxy tracer stays bound to the first provider
 * it saw, so spans would go to a provider since removed (an application or
 * a test that registers a new one).
 */
export function tracer(): Tracer {
  return trace.getTracer("aftercommit", VERSION);
}

// Where @opentelemetry/api 1.x keeps its registered globals (its stable,
// versioned key); Deno's built-in OTel registers there too. Reading a
// symbol-keyed property of globalThis costs about 8 ns here (an eighth of a
// publish), and even a countdown to look every n-th call measurably slows
// publishing, so the hot path reads only the holder found by the last
// `tracing()` call: the holder object, once there, stays (unregistering
// deletes its members only), and `holder.trace` is an ordinary property.
const API_KEY = Symbol.for("opentelemetry.js.api.1");
type Holder = { trace?: unknown; metrics?: unknown };
const globals = globalThis as { [API_KEY]?: Holder };
// Reading a symbol globalThis lacks costs 20-50 ns, one it has about 1 ns:
// hold the key's place (the API assigns its holder over an undefined one).
if (!(API_KEY in globals)) {
  Object.defineProperty(globals, API_KEY, {
    writable: true,
    configurable: true,
  });
}
let holder: Holder | undefined = globals[API_KEY];

/**
 * Whether a tracer provider is registered: without one, spans are skipped.
 * For hot paths: sees a provider registered before this module loaded (Deno's
 * built-in OTel) or before any later {@linkcode tracing} call (a unit of
 * work, a relay pass, a job, a bus registration).
 */
export function tracingHot(): boolean {
  return holder !== undefined && holder.trace !== undefined;
}

/** Whether a tracer provider is registered (looks at the globals). */
export function tracing(): boolean {
  holder ??= globals[API_KEY];
  return holder !== undefined && holder.trace !== undefined;
}

/** The library's instruments (see {@linkcode meters}). */
export interface Instruments {
  /** `aftercommit.outbox.dispatch.duration`: one outbox dispatch, in s. */
  readonly dispatchDuration: Histogram;
  /** `aftercommit.job.duration`: one job attempt, in s. */
  readonly jobDuration: Histogram;
  /**
   * `aftercommit.job.start_delay`: from enqueue (right after the commit, or
   * at the outbox dispatch) to the start of the job's first attempt, in s.
   */
  readonly jobStartDelay: Histogram;
  /** `aftercommit.failures`: failed handlers, dispatches and job attempts. */
  readonly failures: Counter;
}

/** The library's meter when a meter provider is registered, else `undefined`. */
export function meter(): Meter | undefined {
  holder ??= globals[API_KEY];
  if (holder === undefined || holder.metrics === undefined) return undefined;
  return metrics.getMeterProvider().getMeter("aftercommit", VERSION);
}

// The instruments are in seconds; the SDK's default buckets (0, 5, 10 …
// 10000) are made for milliseconds and would put everything under 5 s in one
// bucket. The messaging conventions' duration buckets (as pg-boss uses); the
// start delay goes on to an hour, for relay redeliveries and late retries.
const DURATION_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
];
const DELAY_BUCKETS = [...DURATION_BUCKETS, 30, 60, 300, 900, 3600];

let instrumentsFor: unknown = undefined;
let instruments: Instruments | undefined;

/**
 * The library's instruments when a meter provider is registered, else
 * `undefined` (then nothing is measured). A meter of the API is not a
 * proxy: one taken before the SDK registered stays a no-op, so the
 * provider is looked up on each call and the instruments made again when
 * it changed.
 */
export function meters(): Instruments | undefined {
  holder ??= globals[API_KEY];
  if (holder === undefined || holder.metrics === undefined) return undefined;
  const provider = metrics.getMeterProvider();
  if (provider === instrumentsFor && instruments !== undefined) {
    return instruments;
  }
  const meter = provider.getMeter("aftercommit", VERSION);
  instrumentsFor = provider;
  instruments = {
    dispatchDuration: meter.createHistogram(
      "aftercommit.outbox.dispatch.duration",
      {
        description: "Duration of one outbox dispatch (all its handlers)",
        unit: "s",
        advice: { explicitBucketBoundaries: DURATION_BUCKETS },
      },
    ),
    jobDuration: meter.createHistogram("aftercommit.job.duration", {
      description: "Duration of one job attempt",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    jobStartDelay: meter.createHistogram("aftercommit.job.start_delay", {
      description:
        "From a job's enqueue to the start of its first attempt (the commit to job start latency)",
      unit: "s",
      advice: { explicitBucketBoundaries: DELAY_BUCKETS },
    }),
    failures: meter.createCounter("aftercommit.failures", {
      description:
        "Failed handlers, outbox dispatches and job attempts, by error type",
      unit: "{failure}",
    }),
  };
  return instruments;
}

export { SpanKind };
export type { Span };

/** Marks `span` failed with the error's type only (no message: PII). */
export function recordError(span: Span, error: unknown): void {
  const type = errorType(error);
  span.setAttribute("error.type", type);
  span.addEvent("exception", { "exception.type": type });
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** Options of {@linkcode inSpan}. */
export interface InSpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** Parent context; the active one by default. */
  parent?: Context | undefined;
  links?: { context: SpanContext }[];
}

/**
 * Runs `fn` in a new active span named `name`, ends it when `fn` settles,
 * and records a failure by its type. Callers check {@linkcode tracing}
 * first when the path is hot.
 */
export async function inSpan<T>(
  name: string,
  options: InSpanOptions,
  fn: (span: Span) => T | PromiseLike<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(name, {
    kind: options.kind ?? SpanKind.INTERNAL,
    ...(options.attributes === undefined
      ? {}
      : { attributes: options.attributes }),
    ...(options.links === undefined ? {} : { links: options.links }),
  }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), fn, undefined, span);
  } catch (error) {
    recordError(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/**
 * The W3C `traceparent` of the active span, or `undefined` when there is no
 * valid span context (no SDK, or no span active).
 */
export function activeTraceparent(): string | undefined {
  if (!tracing()) return undefined;
  const span = trace.getActiveSpan();
  if (span === undefined) return undefined;
  const { traceId, spanId, traceFlags } = span.spanContext();
  if (!trace.isSpanContextValid(span.spanContext())) return undefined;
  return `00-${traceId}-${spanId}-${
    (traceFlags & 0xff).toString(16).padStart(2, "0")
  }`;
}

/** The active span's context when tracing and valid, else `undefined`. */
export function activeSpanContext(): SpanContext | undefined {
  const span = trace.getActiveSpan();
  if (span === undefined) return undefined;
  const spanContext = span.spanContext();
  return trace.isSpanContextValid(spanContext) ? spanContext : undefined;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A context whose remote parent is the given W3C `traceparent`, or
 * `undefined` when it is missing or malformed.
 */
export function contextFromTraceparent(
  traceparent: unknown,
): Context | undefined {
  if (typeof traceparent !== "string") return undefined;
  const m = TRACEPARENT.exec(traceparent);
  if (m === null) return undefined;
  const spanContext = {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (!trace.isSpanContextValid(spanContext)) return undefined;
  return trace.setSpanContext(ROOT_CONTEXT, spanContext);
}

/** Common attributes of the library's messaging spans. */
export const MESSAGING_SYSTEM: string = "aftercommit";
