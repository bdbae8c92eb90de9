// deno-lint-ignore-file require-await -- the handlers are async on purpose: the bench measures async handlers
// (a) The Unit of Work's cost: uow.run in outbox mode and in plain mode
// against a bare sql.begin with the same statements and a hand-written
// outbox, for 1 and 10 events per transaction.
import postgres from "postgres";
import { BatchingJobQueue, EventBus, type JobQueue } from "../../mod.ts";
import { PgBossJobQueue } from "../../src/adapters/pg-boss/mod.ts";
import {
  migrateOutbox,
  PostgresUnitOfWork,
} from "../../src/adapters/postgres/mod.ts";
import {
  check,
  type Database,
  interleave,
  median,
  type Report,
  type RunConfig,
  type Variant,
} from "./_lib.ts";
import { enqueueingBus, Item, ItemCreated, ITEMS_DDL } from "./_model.ts";

const HAND_OUTBOX_DDL = `create table if not exists hand_outbox (
  id uuid primary key,
  type text not null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  done_at timestamptz
)`;

/** (a) uow.run vs bare sql.begin vs a hand-written outbox. */
export async function uowBench(
  config: RunConfig,
  app: Database,
  jobsDb: Database,
  log: (line: string) => void,
): Promise<Report> {
  const runs = config.quick ? 50 : 300;
  const sql = postgres(app.url, { max: 4, onnotice: () => {} });
  await sql.unsafe(ITEMS_DDL);
  await sql.unsafe(HAND_OUTBOX_DDL);
  await migrateOutbox(sql);
  // The bus of (a): one no-op async handler per event, as in the baseline's
  // hand-written loop.
  let handled = 0;
  const noop = async (_e: ItemCreated): Promise<void> => {
    handled++;
  };
  const bus = new EventBus();
  bus.register(ItemCreated, noop);
  const outboxUow = new PostgresUnitOfWork(sql, { bus, outbox: true });
  const plainUow = new PostgresUnitOfWork(sql, { bus });

  // The full default path for the note: outbox mode → BatchingJobQueue →
  // pg-boss, counting the writes to the jobs database.
  const jobs = await PgBossJobQueue.connect(jobsDb.url);
  let jobWrites = 0;
  const counting: JobQueue = {
    enqueue: (n, d, o) => jobs.enqueue(n, d, o),
    enqueueMany: (r) => {
      jobWrites++;
      return jobs.enqueueMany(r);
    },
    prepare: (r) => jobs.prepare(r),
    work: (n, h, o) => jobs.work(n, h, o),
    stop: () => jobs.stop(),
  };
  const batching = new BatchingJobQueue(counting);
  const fullUow = new PostgresUnitOfWork(sql, {
    bus: batching.publisher(enqueueingBus(batching, "uow-full")),
    outbox: true,
  });
  const writesPerRun: Record<number, number[]> = {};

  try {
    const variants: Variant[] = [];
    const groups: Report["groups"][number][] = [];
    for (const events of [1, 10]) {
      const names = (i: number) =>
        Array.from({ length: events }, (_, j) => `item ${i}.${j}`);
      const timed = (
        name: string,
        once: (i: number) => Promise<unknown>,
        expectHandled = true,
      ): Variant => ({
        name,
        async sample() {
          handled = 0;
          const [before] = await sql`select count(*)::int as n from items`;
          const t0 = performance.now();
          for (let i = 0; i < runs; i++) await once(i);
          const us = ((performance.now() - t0) * 1000) / runs;
          const [after] = await sql`select count(*)::int as n from items`;
          check(`${name}: items`, after!.n - before!.n, runs * events);
          if (expectHandled) {
            check(`${name}: events handled`, handled, runs * events);
          }
          return { us };
        },
      });
      const rows = (items: Item[]) =>
        items.map(({ id, name }) => ({ id, name }));
      const suffix = `${events} event${events === 1 ? "" : "s"}`;
      const bare = timed(
        `bare sql.begin, same inserts, ${suffix}`,
        async (i) => {
          const items = names(i).map((n) => Item.create(n));
          await sql.begin(async (tx) => {
            await tx`insert into items ${tx(rows(items))}`;
          });
        },
        false,
      );
      // The statements outbox mode sends, with nothing else: the items, and
      // the events as outbox rows in one INSERT (the library's statement),
      // no dispatch and no mark.
      const bareOutbox = timed(
        `bare sql.begin, outbox mode's statements, ${suffix}`,
        async (i) => {
          const items = names(i).map((n) => Item.create(n));
          const batch = JSON.stringify(
            items.flatMap((item) => item.pullEvents() as ItemCreated[]).map(
              (e) => ({
                id: e.eventId,
                type: "bench.item-created",
                payload: { itemId: e.itemId, name: e.name, sample: e.sample },
              }),
            ),
          );
          await sql.begin(async (tx) => {
            await tx`insert into items ${tx(rows(items))}`;
            await tx`insert into aftercommit_outbox
                (id, type, payload, locked_until, not_before, traceparent)
              select e.value->>'id', e.value->>'type', e.value->'payload',
                clock_timestamp() + 30::float8 * interval '1 second',
                clock_timestamp(), null::text
              from json_array_elements(${batch}::text::json)
                with ordinality as e(value, n)
              order by e.n
              on conflict (id) do nothing`;
          });
        },
        false,
      );
      const uowRun =
        (uow: PostgresUnitOfWork<postgres.Sql>) => async (i: number) => {
          await uow.run(async (tx) => {
            const items = names(i).map((n) => tx.track(Item.create(n)));
            await tx.sql`insert into items ${tx.sql(rows(items))}`;
          });
        };
      const outbox = timed(
        `aftercommit uow.run, outbox mode, ${suffix}`,
        uowRun(outboxUow),
      );
      const plain = timed(
        `aftercommit uow.run, plain mode, ${suffix}`,
        uowRun(plainUow),
      );
      const hand = timed(`hand-written outbox, ${suffix}`, async (i) => {
        const items = names(i).map((n) => Item.create(n));
        const recorded = items.flatMap((item) =>
          item.pullEvents()
        ) as ItemCreated[];
        const outboxRows = recorded.map((e) => ({
          id: e.eventId,
          type: "bench.item-created",
          payload: sql.json({
            itemId: e.itemId,
            name: e.name,
            sample: e.sample,
          }),
        }));
        await sql.begin(async (tx) => {
          await tx`insert into items ${tx(rows(items))}`;
          await tx`insert into hand_outbox ${tx(outboxRows)}`;
        });
        for (const e of recorded) await noop(e);
        await sql`update hand_outbox set done_at = now()
          where id = any(${sql.array(recorded.map((e) => e.eventId))}::uuid[])`;
      });
      const full = timed(
        `aftercommit uow.run, outbox mode → BatchingJobQueue → pg-boss, ${suffix}`,
        async (i) => {
          const before = jobWrites;
          await uowRun(fullUow)(i);
          (writesPerRun[events] ??= []).push(jobWrites - before);
        },
        false,
      );
      const all = [bare, bareOutbox, outbox, plain, hand, full];
      variants.push(...all);
      groups.push({
        title: suffix,
        baseline: bare.name,
        rows: all.map((v) => v.name),
      });
      groups.push({
        title: `${suffix}, against outbox mode's statements alone`,
        baseline: bareOutbox.name,
        rows: [outbox.name, bareOutbox.name],
      });
      groups.push({
        title: `${suffix}, against the hand-written outbox`,
        baseline: hand.name,
        rows: [outbox.name, hand.name],
      });
    }
    const samples = await interleave(variants, config, log);
    return {
      id: "a_unit_of_work",
      title: "(a) Unit of Work: a transaction with 1 and 10 events",
      description:
        `${runs} sequential transactions per sample, each inserting 1 or 10 items (one multi-row INSERT) whose aggregates record one event each; the time is per transaction, until \`run\` (or the hand-written code) returns. Baseline: a bare \`sql.begin\` with the same INSERT and no events; a second baseline sends outbox mode's statements alone (the same INSERT, then the events as rows of the library's outbox table in its one INSERT), with no dispatch and no mark. The hand-written outbox inserts the events into its own table in the transaction (one multi-row INSERT), awaits the same no-op handler for each after the COMMIT, then marks them done with one UPDATE by primary key. aftercommit's bus has one no-op handler; the last row of each group runs the default path of the dev server instead (outbox mode, \`BatchingJobQueue\` publisher, a handler that enqueues a keyed job to pg-boss on the jobs database). Inserted items and handled events are counted and checked.`,
      metrics: [{ key: "us", label: "time per transaction", unit: "µs" }],
      groups,
      samples,
      notes: Object.entries(writesPerRun).map(([events, writes]) =>
        `Writes to the jobs database per \`uow.run\` with ${events} event${
          events === "1" ? "" : "s"
        } (outbox mode, BatchingJobQueue): median ${median(writes)}, max ${
          Math.max(...writes)
        }.`
      ),
    };
  } finally {
    await jobs.stop();
    await sql.end();
  }
}
