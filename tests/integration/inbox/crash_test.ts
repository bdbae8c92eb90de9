// The inbox across a crash: a process is killed with SIGKILL after its
// handler booked an order and wrote the inbox record ("effect", before that
// transaction commits) or after that transaction committed and before the
// outbox row was marked done ("marked"). A new process's relay redelivers
// the event, and the ledger holds the booking exactly once: the first time
// the inbox lets the handler run again (nothing had committed), the second
// time it skips it (the record committed with the booking).
//
// Embedded: the child and the takeover share a PGlite data folder, one
// process at a time. Server: a fresh database on TEST_DATABASE_URL.
import assert from "node:assert/strict";
import { fromFileUrl } from "../../unit/_paths.ts";
import { createServerDatabase } from "../../_helpers/server_database.ts";
import { killChildWhenReady } from "../../_helpers/kill_child.ts";
import { relayUntil } from "../../_helpers/poll.ts";
import { HANDLER, ledgerBus, type Location, openApp, OUTBOX } from "./_app.ts";

const CHILD = fromFileUrl(new URL("./_child.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../../../", import.meta.url));
const ROUNDS = 2;

type Stage = "effect" | "marked";

async function location(): Promise<Location & AsyncDisposable> {
  const serverUrl = Deno.env.get("TEST_DATABASE_URL") ?? "";
  if (serverUrl === "") {
    const app = await Deno.makeTempDir({ prefix: "aftercommit_inbox_" });
    return {
      backend: "embedded",
      app,
      [Symbol.asyncDispose]: () => Deno.remove(app, { recursive: true }),
    };
  }
  const db = await createServerDatabase(serverUrl, "aftercommit_inbox");
  return {
    backend: "server",
    app: db.url,
    [Symbol.asyncDispose]: () => db.drop(),
  };
}

/** Runs the child until it blocks at `stage`, kills it, returns the event id. */
async function crashChild(stage: Stage, where: Location): Promise<string> {
  const [eventId] = await killChildWhenReady(
    CHILD,
    [stage, where.backend, where.app],
    ROOT,
    stage,
  );
  return eventId!;
}

interface Round {
  bookings: number;
  records: number;
  ran: boolean[];
  done: boolean;
}

/** Crashes a child at `stage`, then takes over until the event is done. */
async function crashRound(stage: Stage, where: Location): Promise<Round> {
  const eventId = await crashChild(stage, where);
  await using app = await openApp(where);
  const { sql } = app;
  const { bus, ran } = ledgerBus(sql);
  const done = async (): Promise<boolean> => {
    const [row] = await sql<{ done: boolean }[]>`
      select done_at is not null as done from aftercommit_outbox
      where id = ${eventId}`;
    return row?.done === true;
  };
  await relayUntil(sql, { ...OUTBOX, bus }, "the relay's redelivery", done);
  const [counts] = await sql<{ bookings: number; records: number }[]>`
    select
      (select count(*)::int from ledger where event_id = ${eventId}) as bookings,
      (select count(*)::int from aftercommit_inbox
        where event_id = ${eventId} and handler = ${HANDLER}) as records`;
  return { ...counts!, ran, done: await done() };
}

for (
  const [stage, ranOnTakeover] of [["effect", true], ["marked", false]] as const
) {
  Deno.test(
    `a process killed ${
      stage === "effect"
        ? "between the handler's effect and the commit of its inbox record"
        : "after the handler's commit and before the outbox mark"
    }: the effect is applied exactly once, ${ROUNDS} times over`,
    async () => {
      await using where = await location();
      for (let i = 1; i <= ROUNDS; i++) {
        const round = await crashRound(stage, where);
        assert.deepEqual(round, {
          bookings: 1,
          records: 1,
          ran: [ranOnTakeover],
          done: true,
        }, `round ${i}`);
      }
    },
  );
}
