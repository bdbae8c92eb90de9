// OpenTelemetry end to end, with the real SDK (in-memory exporter): one
// POST /users through the dev server's app over HTTP is one trace from the
// request to the job; a registration whose process is SIGKILLed mid-dispatch
// is redelivered by the relay of another process in the same trace (read
// back from the outbox row), and both attempts of its retried job too; no
// span anywhere (pg-boss's own included) holds an email or a name; the
// README's trace picture is drawn from such spans; and the dev server run as
// the README says (OTEL_DENO=true) exports the same trace over OTLP.
import assert from "node:assert/strict";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import {
  installInMemorySdk,
  traceOneRegistration,
  waterfallSvg,
} from "../../docs/telemetry/trace.ts";
import {
  openDevDatabases,
  register,
  startDevServer,
  waitForWelcomeEmail,
} from "../_helpers/dev_server.ts";
import { killChildWhenReady } from "../_helpers/kill_child.ts";
import { fromFileUrl } from "../unit/_paths.ts";
import { relayUntil, waitUntil } from "../_helpers/poll.ts";
import { assertNothingHolds, byAttempt, one } from "../_helpers/spans.ts";
import {
  createLocations,
  openApp,
  openJobs,
  OUTBOX,
  WELCOME_QUEUE,
  welcomeBus,
} from "../integration/outbox/_app.ts";

// One SDK for the file: the dev server's tracer (src/dev/http.ts) and
// pg-boss's are taken once and keep the provider registered first.
const sdk = installInMemorySdk();

const idOf = (span: ReadableSpan): string => span.spanContext().spanId;

/** Whether `ancestor` is `span`'s parent, grandparent, … among `spans`. */
function descends(
  span: ReadableSpan,
  ancestor: ReadableSpan,
  spans: readonly ReadableSpan[],
): boolean {
  const byId = new Map(spans.map((s) => [idOf(s), s]));
  for (
    let parent = span.parentSpanContext?.spanId;
    parent !== undefined;
    parent = byId.get(parent)?.parentSpanContext?.spanId
  ) {
    if (parent === idOf(ancestor)) return true;
  }
  return false;
}

function assertDescends(
  span: ReadableSpan,
  ancestor: ReadableSpan,
  spans: readonly ReadableSpan[],
): void {
  assert.ok(
    descends(span, ancestor, spans),
    `"${span.name}" is under "${ancestor.name}"`,
  );
}

Deno.test({
  name:
    "one POST /users through the dev server is one trace: request, commit, outbox dispatch, publish, handlers, enqueue, job; no span holds the email or the name",
  async fn() {
    await using dbs = await openDevDatabases();
    const email = `grace.${crypto.randomUUID().slice(0, 8)}@example.org`;
    const name = "Grace Brewster Hopper";
    const before = sdk.exporter.getFinishedSpans().length;
    const { status, traceId, spans } = await traceOneRegistration(
      sdk.exporter,
      dbs.env,
      { email, name },
    );
    assert.equal(status, 201);

    const request = one(spans, "POST /users");
    assert.equal(request.kind, SpanKind.SERVER);
    assert.equal(request.parentSpanContext, undefined, "the request is root");
    assert.equal(request.attributes["http.request.method"], "POST");
    assert.equal(request.attributes["http.route"], "/users");
    assert.equal(request.attributes["http.response.status_code"], 201);
    // One trace: every other span of it is under the request.
    for (const span of spans) {
      if (span !== request) assertDescends(span, request, spans);
    }

    const run = one(spans, "uow.run");
    assert.equal(run.parentSpanContext?.spanId, idOf(request));
    assert.equal(run.attributes["aftercommit.uow.outcome"], "committed");
    assertDescends(one(spans, "outbox write"), run, spans);
    const dispatch = one(spans, "outbox dispatch UserRegistered");
    assert.equal(dispatch.kind, SpanKind.CONSUMER);
    assertDescends(dispatch, run, spans);
    assert.equal(dispatch.attributes["aftercommit.outcome"], "ok");
    const publish = one(spans, "publish UserRegistered");
    assertDescends(publish, dispatch, spans);
    const handlers = spans.filter((s) => s.name === "process UserRegistered");
    assert.deepEqual(
      handlers.map((s) => s.attributes["aftercommit.handler"]).sort(),
      ["AuditTrail.record", "WelcomeEmailPolicy.enqueueWelcomeEmail"],
    );
    for (const handler of handlers) {
      assertDescends(handler, publish, spans);
      assert.equal(handler.attributes["aftercommit.outcome"], "ok");
    }
    // The batching queue writes the jobs of the run's handlers in one
    // enqueue when the run's dispatch is over: under the run, after it.
    const enqueue = spans.find((s) =>
      s.kind === SpanKind.PRODUCER &&
      s.instrumentationScope.name === "aftercommit" &&
      s.name.startsWith("enqueue")
    );
    assert.ok(enqueue, "an enqueue span");
    assertDescends(enqueue, run, spans);
    const work = one(spans, "work send-welcome-email");
    assert.equal(work.kind, SpanKind.CONSUMER);
    assertDescends(work, enqueue, spans);
    assert.equal(work.attributes["aftercommit.job.attempt"], 1);
    assert.equal(work.attributes["aftercommit.outcome"], "completed");
    assert.equal(
      work.attributes["messaging.destination.name"],
      "send-welcome-email",
    );

    // Every span this run exported, in any trace: pg-boss's own spans
    // (send, process, complete, …) included.
    const all = sdk.exporter.getFinishedSpans().slice(before);
    assert.ok(
      all.some((s) => s.instrumentationScope.name === "pg-boss"),
      "pg-boss's own spans are among those checked",
    );
    assertNothingHolds(all, [email, name, "Grace", "Hopper"]);

    // The README's picture is drawn from spans like these.
    const svg = waterfallSvg(spans, "test");
    assert.match(svg, /^<svg /);
    for (const span of spans) assert.ok(svg.includes(span.name), span.name);
    assert.ok(!svg.includes(email));
    assert.equal(traceId, request.spanContext().traceId);
  },
});

const CHILD = fromFileUrl(
  new URL("./_telemetry_crash_child.ts", import.meta.url),
);
const ROOT = fromFileUrl(new URL("../../", import.meta.url));

Deno.test({
  name:
    "a process SIGKILLed mid-dispatch: the relay of another process dispatches its event in the original trace (the row's traceparent), and both attempts of the retried job follow",
  async fn() {
    await using locations = await createLocations();
    const email = `ada.${crypto.randomUUID().slice(0, 8)}@example.org`;
    const [childTrace] = await killChildWhenReady(
      CHILD,
      [locations.backend, locations.app, locations.jobs, email],
      ROOT,
      "its handler",
    );
    assert.match(childTrace ?? "", /^[0-9a-f]{32}$/);

    await using app = await openApp(locations);
    const { sql } = app;
    const [row] = await sql<
      { id: string; traceparent: string | null; done: boolean }[]
    >`select id, traceparent, done_at is not null as done
      from aftercommit_outbox`;
    assert.equal(row?.done, false, "the child died before the row was done");
    // The child's context, stored with the row: its trace, and the span
    // that wrote it (the child's unit of work).
    const stored = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(
      row.traceparent ?? "",
    );
    assert.ok(stored, `a traceparent: ${row.traceparent}`);
    assert.equal(stored[1], childTrace);
    const storedSpan = stored[2]!;

    // The queue's default retry policy retries a failed attempt.
    const jobs = await openJobs(locations);
    try {
      const attempts: number[] = [];
      await jobs.work<{ userId: string }>(WELCOME_QUEUE, async (job) => {
        attempts.push(job.attempt);
        // The message quotes personal data: spans may keep its type only.
        if (job.attempt === 1) throw new Error(`mailbox ${email} is full`);
        await sql`insert into welcome_emails (job_id, user_id)
          values (${job.id}, ${job.data.userId})`;
      }, { pollingIntervalSeconds: 0.5 });
      const { bus } = welcomeBus(() => Promise.resolve(jobs));
      const inTrace = () =>
        sdk.exporter.getFinishedSpans().filter((s) =>
          s.spanContext().traceId === childTrace
        );
      // Outside any request: no span is active here.
      await relayUntil(
        sql,
        { ...OUTBOX, bus },
        () =>
          `both attempts: attempts ${attempts}; spans in the trace: ${
            inTrace().map((s) => s.name).join(", ")
          }`,
        () =>
          inTrace().filter((s) => s.name === `work ${WELCOME_QUEUE}`)
            .length >= 2,
      );
      const spans = inTrace();
      const all = sdk.exporter.getFinishedSpans();

      // The redelivery continues the child's trace from the stored span.
      const dispatch = one(spans, "outbox dispatch UserRegistered");
      assert.equal(dispatch.spanContext().traceId, childTrace);
      assert.ok(
        dispatch.parentSpanContext?.spanId === storedSpan ||
          dispatch.links.some((l) => l.context.spanId === storedSpan),
        "the dispatch is parented on, or linked to, the span stored with the row",
      );
      assert.equal(dispatch.attributes["aftercommit.outcome"], "ok");
      assert.equal(dispatch.attributes["aftercommit.outbox.relay"], true);
      const handler = one(spans, "process UserRegistered");
      assertDescends(handler, dispatch, spans);
      const enqueue = spans.find((s) =>
        s.kind === SpanKind.PRODUCER &&
        s.instrumentationScope.name === "aftercommit"
      );
      assert.ok(enqueue, "an enqueue span in the trace");
      assertDescends(enqueue, dispatch, spans);

      // Both attempts of the job: in the trace, under the enqueue.
      const work = byAttempt(
        spans,
        `work ${WELCOME_QUEUE}`,
        "aftercommit.job.attempt",
      );
      assert.deepEqual(
        work.map((s) => [
          s.attributes["aftercommit.job.attempt"],
          s.attributes["aftercommit.outcome"],
          s.attributes["error.type"],
          s.status.code,
        ]),
        [
          [1, "failed", "Error", SpanStatusCode.ERROR],
          [2, "completed", undefined, SpanStatusCode.UNSET],
        ],
      );
      for (const attempt of work) assertDescends(attempt, enqueue, spans);

      // Nothing anywhere (the relay pass, pg-boss's spans) holds the email,
      // not even the failed attempt's error message.
      assertNothingHolds(all, [email]);
    } finally {
      await jobs.stop();
    }
  },
});

/** A span as OTLP/JSON sends it (the fields these tests read). */
interface OtlpSpan {
  readonly scope: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: readonly { readonly key: string }[];
}

Deno.test({
  name:
    "with OTEL_DENO=true the dev server exports one registration over OTLP as one trace rooted at POST /users, with neither the email nor the name anywhere in what it sends",
  async fn() {
    const spans: OtlpSpan[] = [];
    let sent = "";
    const collector = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request) => {
        const text = await request.text();
        sent += text;
        if (new URL(request.url).pathname === "/v1/traces") {
          const body = JSON.parse(text) as {
            resourceSpans: {
              scopeSpans: { scope: { name: string }; spans: OtlpSpan[] }[];
            }[];
          };
          for (const { scopeSpans } of body.resourceSpans) {
            for (const { scope, spans: list } of scopeSpans) {
              for (const span of list) {
                spans.push({ ...span, scope: scope.name });
              }
            }
          }
        }
        return Response.json({});
      },
    );
    try {
      await using dbs = await openDevDatabases();
      const server = await startDevServer({
        ...dbs.env,
        OTEL_DENO: "true",
        OTEL_SERVICE_NAME: "aftercommit-dev",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
      });
      const email = `ada.${crypto.randomUUID().slice(0, 8)}@example.org`;
      const name = "Augusta Ada King";
      try {
        const answer = await register(server, { email, name });
        assert.equal(answer.status, 201);
        await waitForWelcomeEmail(server, String(answer.body.id));
      } finally {
        // A stop ends the process, which flushes the exporter.
        assert.equal(await server.stop("SIGTERM"), 0, server.output());
      }
      await waitUntil(
        () =>
          `the job's span to be exported; spans: ${spans.map((s) => s.name)}`,
        () => spans.some((s) => s.name === "work send-welcome-email"),
        20_000,
      );

      const roots = spans.filter((s) =>
        s.name === "POST /users" && s.scope === "aftercommit-dev"
      );
      assert.equal(roots.length, 1, "one request span from the app");
      const root = roots[0]!;
      assert.equal(root.kind, 2, "SERVER");
      assert.ok(!root.parentSpanId, "the request's span is the root");
      const trace = spans.filter((s) => s.traceId === root.traceId);
      const byId = new Map(trace.map((s) => [s.spanId, s]));
      const under = (span: OtlpSpan, ancestor: OtlpSpan): boolean => {
        for (
          let id = span.parentSpanId;
          id;
          id = byId.get(id)?.parentSpanId ?? ""
        ) {
          if (id === ancestor.spanId) return true;
        }
        return false;
      };
      const named = (name: string): OtlpSpan => {
        const found = trace.filter((s) => s.name === name);
        assert.equal(found.length, 1, `one ${name} in the request's trace`);
        return found[0]!;
      };
      const run = named("uow.run");
      assert.equal(run.parentSpanId, root.spanId);
      const dispatch = named("outbox dispatch UserRegistered");
      assert.ok(under(dispatch, run));
      const publish = named("publish UserRegistered");
      assert.ok(under(publish, dispatch));
      const handlers = trace.filter((s) => s.name === "process UserRegistered");
      assert.equal(handlers.length, 2);
      for (const handler of handlers) assert.ok(under(handler, publish));
      const work = named("work send-welcome-email");
      assert.ok(
        under(work, run),
        "the job's attempt is under the run (its batched enqueue)",
      );

      // Deno's built-in OTel appends a key set twice (the SDK replaces
      // it): a span would then carry two values for one attribute.
      for (const span of trace) {
        const keys = span.attributes.map((a) => a.key);
        assert.deepEqual(
          keys.filter((key, i) => keys.indexOf(key) !== i),
          [],
          `"${span.name}" exports an attribute twice`,
        );
      }

      // Every payload the process sent: all traces (pg-boss's and Deno's
      // own HTTP spans included), metrics and logs.
      for (const secret of [email, name, "Augusta"]) {
        assert.ok(!sent.includes(secret), `the export holds "${secret}"`);
      }
    } finally {
      await collector.shutdown();
    }
  },
});
