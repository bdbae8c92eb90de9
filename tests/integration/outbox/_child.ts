// A process that registers one user in outbox mode and blocks at a crash
// point ("committed": after COMMIT, before dispatch; "dispatched": after the
// welcome email is enqueued, before the outbox row is marked done), printing
// "ready <userId> <eventId>" so the test can SIGKILL it there.
//
// Usage: _child.ts <committed|dispatched> <embedded|server> <app> <jobs>
import type { JobQueue } from "../../../mod.ts";
import {
  type OutboxCheckpoint,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import {
  type Locations,
  openApp,
  openJobs,
  OUTBOX,
  User,
  welcomeBus,
} from "./_app.ts";

const [stage, backend, app, jobs] = Deno.args;
if (
  (stage !== "committed" && stage !== "dispatched") ||
  (backend !== "embedded" && backend !== "server") ||
  app === undefined || jobs === undefined
) {
  throw new TypeError(
    "usage: _child.ts <committed|dispatched> <embedded|server> <app> <jobs>",
  );
}
const locations: Locations = { backend, app, jobs };

class CrashingUnitOfWork extends PostgresUnitOfWork<typeof sql> {
  eventId = "";
  protected override async outboxCheckpoint(
    at: OutboxCheckpoint,
    eventIds: readonly string[],
  ): Promise<void> {
    this.eventId ||= eventIds[0] ?? "";
    if (at !== stage) return;
    await Deno.stdout.write(
      new TextEncoder().encode(`ready ${user?.id} ${this.eventId}\n`),
    );
    await new Promise(() => {}); // until SIGKILL
  }
}

const { sql } = await openApp(locations);
// Connected on first use: at "committed" no handler runs.
let queue: Promise<JobQueue> | undefined;
const { bus } = welcomeBus(() => queue ??= openJobs(locations));
const uow = new CrashingUnitOfWork(sql, { bus, outbox: OUTBOX });
let user: User | undefined;
await uow.run(async (tx) => {
  user = tx.track(User.register(`${crypto.randomUUID()}@example.com`));
  await tx
    .sql`insert into users (id, email) values (${user.id}, ${user.email})`;
});
throw new Error(`The child was not stopped at "${stage}"`);
