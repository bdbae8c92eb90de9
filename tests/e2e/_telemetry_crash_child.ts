// A process that traces one registration in outbox mode with the
// OpenTelemetry SDK and is killed while the event's first dispatch runs:
// its handler prints "ready <traceId>" (the trace it sees as active) and
// blocks until SIGKILL, so the outbox row stays undone and none of this
// process's spans is ever exported.
//
// Usage: _telemetry_crash_child.ts <embedded|server> <app> <jobs> <email>
import { context, SpanKind, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { EventBus } from "../../mod.ts";
import { PostgresUnitOfWork } from "../../src/adapters/postgres/mod.ts";
import {
  type Locations,
  openApp,
  OUTBOX,
  User,
  UserRegistered,
} from "../integration/outbox/_app.ts";

const [backend, app, jobs, email] = Deno.args;
if (
  (backend !== "embedded" && backend !== "server") || app === undefined ||
  jobs === undefined || email === undefined
) {
  throw new TypeError(
    "usage: _telemetry_crash_child.ts <embedded|server> <app> <jobs> <email>",
  );
}
const locations: Locations = { backend, app, jobs };

// Spans are recorded (real ids, sampled) but exported nowhere: this
// process dies before it could export them.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider());

const { sql } = await openApp(locations);
const bus = new EventBus();
bus.register(UserRegistered, async function Welcome() {
  const traceId = trace.getActiveSpan()?.spanContext().traceId ?? "none";
  await Deno.stdout.write(new TextEncoder().encode(`ready ${traceId}\n`));
  await new Promise(() => {}); // until SIGKILL
});
const uow = new PostgresUnitOfWork(sql, { bus, outbox: OUTBOX });
await trace.getTracer("crash-child").startActiveSpan(
  "POST /users",
  { kind: SpanKind.SERVER },
  async (span) => {
    await uow.run(async (tx) => {
      const user = tx.track(User.register(email));
      await tx
        .sql`insert into users (id, email) values (${user.id}, ${user.email})`;
    });
    span.end();
  },
);
throw new Error("The child was not stopped in its handler");
