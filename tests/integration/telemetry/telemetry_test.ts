// OpenTelemetry with the real SDK (in-memory exporter, AsyncLocalStorage
// context): one unit of work in outbox mode gives one trace from the
// request to the job, a relay redelivery and a job retry stay in it, and no
// span carries personal data.
import assert from "node:assert/strict";
import {
  context,
  metrics,
  type Span as ApiSpan,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  AggregateRoot,
  DomainEvent,
  EventBus,
  EventRegistry,
  PublishAfterCommitError,
} from "../../../mod.ts";
import {
  migrateOutbox,
  type OutboxOptions,
  OutboxRelay,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import type { DeadLetter } from "../../../src/adapters/pg-boss/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import { waitUntil } from "../../_helpers/poll.ts";
import { assertNothingHolds, byAttempt, one } from "../../_helpers/spans.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";

// Personal data: no span attribute, event or status may hold it.
const EMAIL = "grace.hopper@example.org";
const NAME = "Grace Brewster Hopper";

class UserRegistered extends DomainEvent {
  constructor(
    readonly userId: string,
    readonly email: string,
    readonly name: string,
  ) {
    super();
  }
}

class User extends AggregateRoot {
  private constructor(readonly id: string) {
    super();
  }
  static register(email: string, name: string): User {
    const user = new User(crypto.randomUUID());
    user.recordEvent(new UserRegistered(user.id, email, name));
    return user;
  }
}

class PasswordReset extends DomainEvent {
  constructor(readonly email: string) {
    super();
  }
}

const registry = new EventRegistry();
registry.register("test.telemetry.user-registered", UserRegistered);
registry.register("test.telemetry.password-reset", PasswordReset);

/** A reader the test collects from when it wants. */
class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}
const reader = new TestReader();
const meterProvider = new MeterProvider({ readers: [reader] });
metrics.setGlobalMeterProvider(meterProvider);

/** The data points of one metric, by name. */
async function points(name: string): Promise<DataPoint<unknown>[]> {
  const { resourceMetrics } = await reader.collect();
  return resourceMetrics.scopeMetrics
    .flatMap((scope) => scope.metrics)
    .filter((metric) => metric.descriptor.name === name)
    .flatMap((metric) => metric.dataPoints as DataPoint<unknown>[]);
}

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
trace.setGlobalTracerProvider(provider);
const tracer = trace.getTracer("telemetry-test");

function freshOptions(extra: OutboxOptions = {}): OutboxOptions & {
  table: string;
} {
  return {
    table: `outbox_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
    registry,
    leaseSeconds: 1,
    retryDelaySeconds: 0,
    ...extra,
  };
}

/** Runs `fn` in a root span standing in for the HTTP request. */
async function inRequest<T>(fn: () => Promise<T>): Promise<{
  result: T | undefined;
  error: unknown;
  traceId: string;
  spanId: string;
}> {
  return await tracer.startActiveSpan("POST /users", async (span: ApiSpan) => {
    const { traceId, spanId } = span.spanContext();
    try {
      return { result: await fn(), error: undefined, traceId, spanId };
    } catch (error) {
      return { result: undefined, error, traceId, spanId };
    } finally {
      span.end();
    }
  });
}

function spansOf(traceId: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) =>
    s.spanContext().traceId === traceId
  );
}

async function waitForSpans(
  traceId: string,
  what: string,
  check: (spans: ReadableSpan[]) => boolean,
): Promise<ReadableSpan[]> {
  await waitUntil(
    () => `${what}; spans: ${spansOf(traceId).map((s) => s.name).join(", ")}`,
    () => check(spansOf(traceId)),
    20_000,
  );
  return spansOf(traceId);
}

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

function assertNoPersonalData(spans: readonly ReadableSpan[]): void {
  assertNothingHolds(spans, [EMAIL, NAME, "grace", "Hopper"]);
}

Deno.test({
  name: "OpenTelemetry: one trace from the request to the job",
  async fn(t) {
    await using db = await openAppDatabase();
    await using jobsDb = await openJobsDatabase();
    try {
      await t.step(
        "uow.run in outbox mode: run, outbox write and dispatch, publish, handler, job send and job processing in one trace with the right parents",
        async () => {
          const options = freshOptions();
          await migrateOutbox(db.sql, options);
          const queue = uniqueQueueName("welcome");
          await using jobs = await jobsDb.connect();
          const seen = new Collector<unknown>();
          await jobs.work(queue, (job) => {
            seen.push(job.data);
          });
          const bus = new EventBus();
          bus.register(UserRegistered, async function WelcomePolicy(event) {
            await jobs.enqueue(queue, {
              userId: event.userId,
              email: event.email,
            }, { key: event.eventId });
          });
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          const { error, traceId, spanId } = await inRequest(() =>
            uow.run((tx) => {
              tx.track(User.register(EMAIL, NAME));
            })
          );
          assert.equal(error, undefined);
          // The row is marked done in the background: wait for it, so the
          // step ends with no query in flight (the sanitizers are on).
          await uow.flush();
          const [data] = await seen.atLeast(1, "the job");
          const userId = (data as { userId: string }).userId;
          assert.deepEqual(data, { userId, email: EMAIL }, "no trace key left");
          const spans = await waitForSpans(
            traceId,
            "the job's span",
            (s) => s.some((x) => x.name === `work ${queue}`),
          );

          const run = one(spans, "uow.run");
          const write = one(spans, "outbox write");
          const dispatch = one(spans, "outbox dispatch UserRegistered");
          const publish = one(spans, "publish UserRegistered");
          const handler = one(spans, "process UserRegistered");
          const send = one(spans, `enqueue ${queue}`);
          const job = one(spans, `work ${queue}`);
          assert.equal(parentOf(run), spanId);
          assert.equal(parentOf(write), run.spanContext().spanId);
          assert.equal(parentOf(dispatch), run.spanContext().spanId);
          assert.equal(parentOf(publish), dispatch.spanContext().spanId);
          assert.equal(parentOf(handler), publish.spanContext().spanId);
          assert.equal(parentOf(send), handler.spanContext().spanId);
          assert.equal(parentOf(job), send.spanContext().spanId);

          assert.equal(run.attributes["aftercommit.uow.outcome"], "committed");
          assert.equal(
            handler.attributes["aftercommit.handler"],
            "WelcomePolicy",
          );
          assert.equal(handler.attributes["aftercommit.outcome"], "ok");
          assert.equal(dispatch.attributes["aftercommit.outcome"], "ok");
          assert.equal(dispatch.attributes["aftercommit.outbox.relay"], false);
          assert.equal(job.attributes["messaging.destination.name"], queue);
          assert.equal(job.attributes["aftercommit.job.attempt"], 1);
          assert.equal(
            job.attributes["messaging.message.id"],
            send.attributes["messaging.message.id"],
          );
          assert.equal(job.attributes["aftercommit.outcome"], "completed");
          assertNoPersonalData(spans);
        },
      );

      await t.step(
        "a row left undone is dispatched by the relay in the writer's trace (traceparent column), linked to the relay pass",
        async () => {
          const options = freshOptions();
          await migrateOutbox(db.sql, options);
          const bus = new EventBus();
          let calls = 0;
          const delivered = new Collector<string>();
          bus.register(UserRegistered, function Mailer(event) {
            calls++;
            // The message quotes personal data: only the type may be kept.
            if (calls === 1) throw new Error(`cannot mail ${event.email}`);
            delivered.push(event.userId);
          });
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          const { error, traceId } = await inRequest(() =>
            uow.run((tx) => {
              tx.track(User.register(EMAIL, NAME));
            })
          );
          assert.ok(error instanceof PublishAfterCommitError);
          const [row] = await db.observer.unsafe(
            `select traceparent, done_at is null as undone from "${options.table}"`,
          );
          assert.equal(row!.undone, true);
          const run = one(spansOf(traceId), "uow.run");
          assert.equal(
            row!.traceparent,
            `00-${traceId}-${run.spanContext().spanId}-01`,
          );
          assert.equal(run.attributes["aftercommit.uow.outcome"], "committed");
          assert.equal(run.status.code, SpanStatusCode.ERROR);

          // The relay runs outside any request: no active span.
          const relay = new OutboxRelay(db.sql, { ...options, bus });
          const pass = await relay.runOnce();
          assert.equal(pass.dispatched, 1);
          await delivered.atLeast(1, "the redelivery");

          const spans = spansOf(traceId);
          const dispatches = byAttempt(
            spans,
            "outbox dispatch UserRegistered",
            "aftercommit.outbox.attempt",
          );
          assert.equal(dispatches.length, 2);
          const [first, second] = dispatches;
          assert.equal(first!.attributes["aftercommit.outcome"], "failed");
          assert.equal(first!.attributes["error.type"], "Error");
          assert.equal(first!.status.code, SpanStatusCode.ERROR);
          assert.equal(second!.attributes["aftercommit.outbox.relay"], true);
          assert.equal(second!.attributes["aftercommit.outbox.attempt"], 2);
          assert.equal(second!.attributes["aftercommit.outcome"], "ok");
          assert.equal(parentOf(second!), run.spanContext().spanId);
          // The relay pass is its own trace, linked from the dispatch.
          const passSpan = exporter.getFinishedSpans().find((s) =>
            s.name === "outbox relay pass" &&
            s.spanContext().spanId === second!.links[0]?.context.spanId
          );
          assert.ok(passSpan, "the dispatch links to its relay pass");
          assert.notEqual(passSpan.spanContext().traceId, traceId);
          assert.equal(
            passSpan.attributes["messaging.batch.message_count"],
            1,
          );
          const handlers = spans.filter((s) =>
            s.name === "process UserRegistered"
          );
          assert.deepEqual(
            handlers.map((s) => s.attributes["aftercommit.outcome"]).sort(),
            ["error", "ok"],
          );
          assertNoPersonalData([...spans, passSpan]);
        },
      );

      await t.step(
        "every attempt of a retried job continues the trace it was sent in",
        async () => {
          const queue = uniqueQueueName("flaky");
          await using jobs = await jobsDb.connect({
            queueDefaults: {
              retryLimit: 2,
              retryDelaySeconds: 0,
              retryBackoff: false,
            },
          });
          const attempts = new Collector<number>();
          await jobs.work<{ email: string }>(queue, (job) => {
            attempts.push(job.attempt);
            if (job.attempt === 1) {
              throw new TypeError(`mailbox ${job.data.email} is full`);
            }
          });
          const { traceId } = await inRequest(() =>
            jobs.enqueue(queue, { email: EMAIL, name: NAME })
          );
          await attempts.atLeast(2, "the retry");
          const spans = await waitForSpans(
            traceId,
            "both attempts' spans",
            (s) => s.filter((x) => x.name === `work ${queue}`).length === 2,
          );
          const send = one(spans, `enqueue ${queue}`);
          const processed = byAttempt(
            spans,
            `work ${queue}`,
            "aftercommit.job.attempt",
          );
          assert.deepEqual(
            processed.map((s) => [
              s.attributes["aftercommit.job.attempt"],
              s.attributes["aftercommit.outcome"],
              s.attributes["error.type"],
              parentOf(s),
            ]),
            [
              [1, "failed", "TypeError", send.spanContext().spanId],
              [2, "completed", undefined, send.spanContext().spanId],
            ],
          );
          assertNoPersonalData(spans);
        },
      );
      await t.step(
        "migrateOutbox() adds the traceparent column to a table created before it",
        async () => {
          const options = freshOptions();
          // The table as earlier versions created it.
          await db.sql.unsafe(`create table "${options.table}" (
            id text primary key,
            seq bigint generated always as identity,
            type text not null,
            payload json not null,
            created_at timestamptz not null default now(),
            locked_until timestamptz,
            attempts integer not null default 0,
            last_error text,
            done_at timestamptz,
            parked_at timestamptz,
            not_before timestamptz
          )`);
          await migrateOutbox(db.sql, options);
          const bus = new EventBus();
          const delivered = new Collector<string>();
          bus.register(UserRegistered, (event) => {
            delivered.push(event.userId);
          });
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          const { traceId } = await inRequest(() =>
            uow.run((tx) => {
              tx.track(User.register(EMAIL, NAME));
            })
          );
          await delivered.atLeast(1, "the event");
          await uow.flush();
          const [row] = await db.observer.unsafe(
            `select traceparent from "${options.table}"`,
          );
          assert.match(String(row!.traceparent), new RegExp(`^00-${traceId}-`));
        },
      );

      await t.step(
        "a row the relay cannot rebuild (its registry lacks the type) fails in the writer's trace",
        async () => {
          const options = freshOptions();
          await migrateOutbox(db.sql, options);
          const bus = new EventBus();
          bus.register(UserRegistered, function Mailer() {
            throw new Error("down");
          });
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          const { error, traceId } = await inRequest(() =>
            uow.run((tx) => {
              tx.track(User.register(EMAIL, NAME));
            })
          );
          assert.ok(error instanceof PublishAfterCommitError);
          const run = one(spansOf(traceId), "uow.run");

          // A relay of an older release: its registry lacks the type.
          const relay = new OutboxRelay(db.sql, {
            ...options,
            registry: new EventRegistry(),
            bus,
          });
          const pass = await relay.runOnce();
          assert.equal(pass.failed, 1);

          // Named by the stored type: this relay does not know the class.
          const failed = spansOf(traceId).filter((s) =>
            s.name === "outbox dispatch test.telemetry.user-registered"
          );
          assert.equal(failed.length, 1, "the relay's attempt is in the trace");
          assert.equal(parentOf(failed[0]!), run.spanContext().spanId);
          assert.equal(failed[0]!.attributes["aftercommit.outcome"], "failed");
          assert.equal(failed[0]!.attributes["aftercommit.outbox.attempt"], 2);
          assert.equal(
            failed[0]!.attributes["error.type"],
            "UnknownEventTypeError",
          );
          assert.equal(failed[0]!.status.code, SpanStatusCode.ERROR);
          assertNoPersonalData(spansOf(traceId));
        },
      );

      await t.step(
        "a dead letter's data is listed without the trace context",
        async () => {
          const queue = uniqueQueueName("doomed");
          await using jobs = await jobsDb.connect({
            queueDefaults: { retryLimit: 0 },
          });
          const failed = new Collector<number>();
          await jobs.work(queue, (job) => {
            failed.push(job.attempt);
            throw new Error("no");
          });
          await inRequest(() => jobs.enqueue(queue, { userId: "u1" }));
          await failed.atLeast(1, "the attempt");
          let letters: DeadLetter[] = [];
          await waitUntil("the dead letter", async () => {
            letters = await jobs.deadLetters({ queue, includeData: true });
            return letters.length > 0;
          }, 20_000);
          assert.deepEqual(letters.map((l) => l.data), [{ userId: "u1" }]);
        },
      );
      await t.step(
        "metrics: outbox dispatch and job durations, failures by component and error type, without personal data",
        async () => {
          const options = freshOptions();
          await migrateOutbox(db.sql, options);
          const queue = uniqueQueueName("reset");
          await using jobs = await jobsDb.connect({
            queueDefaults: {
              retryLimit: 1,
              retryDelaySeconds: 0,
              retryBackoff: false,
            },
          });
          const attempts = new Collector<number>();
          await jobs.work<{ email: string }>(queue, (job) => {
            attempts.push(job.attempt);
            if (job.attempt === 1) throw new RangeError(job.data.email);
          });
          const bus = new EventBus();
          let calls = 0;
          bus.register(PasswordReset, async function ResetMailer(event) {
            if (++calls === 1) throw new SyntaxError(event.email);
            await jobs.enqueue(queue, { email: event.email });
          });
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          await assert.rejects(
            uow.run((tx) => tx.publishAfterCommit(new PasswordReset(EMAIL))),
            PublishAfterCommitError,
          );
          await new OutboxRelay(db.sql, { ...options, bus }).runOnce();
          await attempts.atLeast(2, "the job's retry");

          const dispatches = (await points(
            "aftercommit.outbox.dispatch.duration",
          )).filter((p) =>
            p.attributes["aftercommit.event.type"] === "PasswordReset"
          );
          assert.deepEqual(
            dispatches.map((p) => [
              p.attributes["aftercommit.outcome"],
              (p.value as Histogram).count,
            ]).sort(),
            [["failed", 1], ["ok", 1]],
          );
          const failures = (await points("aftercommit.failures")).filter((
            p,
          ) =>
            p.attributes["aftercommit.event.type"] === "PasswordReset" ||
            p.attributes["messaging.destination.name"] === queue
          );
          assert.deepEqual(
            failures.map((p) => [
              p.attributes["aftercommit.component"],
              p.attributes["error.type"],
              p.value,
            ]).sort(),
            [
              ["handler", "SyntaxError", 1],
              ["job", "RangeError", 1],
              ["outbox", "SyntaxError", 1],
            ],
          );
          // The job's span ends, and its duration is recorded, after the
          // handler returned: wait for the second attempt's point.
          let durations: DataPoint<unknown>[] = [];
          await waitUntil(
            () =>
              `the second attempt's duration; outcomes: ${
                durations.map((p) => p.attributes["aftercommit.outcome"])
              }`,
            async () => {
              durations = (await points("aftercommit.job.duration")).filter((
                p,
              ) => p.attributes["messaging.destination.name"] === queue);
              return durations.some((p) =>
                p.attributes["aftercommit.outcome"] === "completed"
              );
            },
            20_000,
          );
          assert.deepEqual(
            durations.map((p) => [
              p.attributes["aftercommit.outcome"],
              (p.value as Histogram).count,
            ]).sort(),
            [["completed", 1], ["failed", 1]],
          );
          // Only the first attempt measures the delay from enqueue.
          const delays = (await points("aftercommit.job.start_delay")).filter(
            (p) => p.attributes["messaging.destination.name"] === queue,
          );
          assert.deepEqual(
            delays.map((p) => (p.value as Histogram).count),
            [1],
          );
          const all = JSON.stringify(
            [...dispatches, ...failures, ...durations, ...delays].map((p) =>
              p.attributes
            ),
          );
          assert.ok(!all.includes(EMAIL), all);
        },
      );
      await t.step(
        "metrics: a running relay reports the outbox's pending and parked events as gauges",
        async () => {
          const options = freshOptions({ maxAttempts: 1 });
          await migrateOutbox(db.sql, options);
          const bus = new EventBus();
          bus.register(PasswordReset, function FailingMailer() {
            throw new Error("down");
          });
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          // One event parks at its first failure; one waits for its time.
          await assert.rejects(
            uow.run((tx) => {
              tx.publishAfterCommit(new PasswordReset(EMAIL));
              tx.publishAfterCommit(new PasswordReset(EMAIL), {
                delaySeconds: 3600,
              });
            }),
            PublishAfterCommitError,
          );
          await using _relay = new OutboxRelay(db.sql, { ...options, bus })
            .start();
          const gauges = async (name: string): Promise<unknown[]> =>
            (await points(name))
              .filter((p) =>
                // The table's name as given, unquoted (was `"name"` before
                // the adapter's rewrite; dashboards key on this value).
                p.attributes["db.collection.name"] === options.table
              )
              .map((p) => p.value);
          assert.deepEqual(await gauges("aftercommit.outbox.pending"), [1]);
          assert.deepEqual(await gauges("aftercommit.outbox.parked"), [1]);
        },
      );
    } finally {
      await meterProvider.shutdown();
      metrics.disable();
      trace.disable();
      context.disable();
      await provider.shutdown();
    }
  },
});
