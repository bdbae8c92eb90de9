// A worker-only or relay-only process of the scale-out measurement (f),
// started by scale.ts. Protocol on stdin/stdout, one line each:
//   → "ready"            once connected
//   ← "go"               (relay: start the relay)
//   ← "stop"             stop, then
//   → JSON of the ids it handled
// Modes:
//   worker <jobsUrl> <queue>   a PgBossJobQueue worker with default options
//   relay <appUrl>             an OutboxRelay whose bus records event ids
//   fill <appUrl> <n>          commits n items and n events in outbox mode,
//                              prints "committed" from the bus (which never
//                              answers), to be killed: n pending events
import postgres from "postgres";
import { EventBus, type EventPublisher } from "../../mod.ts";
import { PgBossJobQueue } from "../../src/adapters/pg-boss/mod.ts";
import {
  OutboxRelay,
  PostgresUnitOfWork,
} from "../../src/adapters/postgres/mod.ts";
import { Item, ItemCreated } from "./_model.ts";

const [mode, url, arg] = Deno.args;
const encoder = new TextEncoder();
const say = (line: string) =>
  Deno.stdout.writeSync(encoder.encode(line + "\n"));

async function* lines(): AsyncGenerator<string> {
  let buffer = "";
  for await (
    const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())
  ) {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
    }
  }
}
const input = lines();
const expect = async (word: string) => {
  const { value } = await input.next();
  if (value !== word) {
    throw new Error(`expected "${word}" on stdin, got ${value}`);
  }
};

const handled: string[] = [];
if (mode === "worker") {
  const jobs = await PgBossJobQueue.connect(url!);
  await jobs.work(arg!, (job) => {
    handled.push(job.id);
  });
  say("ready");
  await expect("stop");
  await jobs.stop();
} else if (mode === "relay") {
  const sql = postgres(url!, { max: 4, onnotice: () => {} });
  const bus = new EventBus();
  bus.register(ItemCreated, (e: ItemCreated) => {
    handled.push(e.eventId);
  });
  const relay = new OutboxRelay(sql, { bus });
  say("ready");
  await expect("go");
  relay.start();
  await expect("stop");
  await relay.stop();
  await sql.end();
} else if (mode === "fill") {
  const sql = postgres(url!, { max: 2, onnotice: () => {} });
  const n = Number(arg);
  const hang: EventPublisher = {
    publishAll() {
      say("committed");
      return new Promise(() => {});
    },
  };
  const uow = new PostgresUnitOfWork(sql, {
    bus: hang,
    outbox: { leaseSeconds: 0.5 },
  });
  await uow.run(async (tx) => {
    const items = Array.from(
      { length: n },
      (_, i) => tx.track(Item.create(`item ${i}`)),
    );
    await tx.sql`insert into items ${
      tx.sql(items.map(({ id, name }) => ({ id, name })))
    }`;
  });
} else {
  throw new Error(`unknown mode ${mode}`);
}
say(JSON.stringify(handled));
Deno.exit(0);
