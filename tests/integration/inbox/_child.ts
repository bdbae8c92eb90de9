// A process that commits one OrderPaid in outbox mode and blocks at a crash
// point, printing "ready <eventId>" so the test can SIGKILL it there:
//   "effect": the handler's ledger row and inbox record are written, its
//     transaction is not committed;
//   "marked": the handler's transaction committed, the outbox row is not
//     marked done yet.
//
// Usage: _child.ts <effect|marked> <embedded|server> <app>
import {
  type OutboxCheckpoint,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import {
  ledgerBus,
  type Location,
  openApp,
  OrderPaid,
  OUTBOX,
} from "./_app.ts";

const [stage, backend, app] = Deno.args;
if (
  (stage !== "effect" && stage !== "marked") ||
  (backend !== "embedded" && backend !== "server") || app === undefined
) {
  throw new TypeError(
    "usage: _child.ts <effect|marked> <embedded|server> <app>",
  );
}
const location: Location = { backend, app };
const event = new OrderPaid(crypto.randomUUID());

async function ready(): Promise<never> {
  await Deno.stdout.write(new TextEncoder().encode(`ready ${event.eventId}\n`));
  return await new Promise<never>(() => {}); // until SIGKILL
}

class CrashingUnitOfWork extends PostgresUnitOfWork<typeof sql> {
  protected override async outboxCheckpoint(
    at: OutboxCheckpoint,
  ): Promise<void> {
    if (stage === "marked" && at === "dispatched") await ready();
  }
}

const { sql } = await openApp(location);
const { bus } = ledgerBus(sql, async () => {
  if (stage === "effect") await ready();
});
const uow = new CrashingUnitOfWork(sql, { bus, outbox: OUTBOX });
await uow.run((tx) => {
  tx.publishAfterCommit(event);
});
throw new Error(`The child was not stopped at "${stage}"`);
