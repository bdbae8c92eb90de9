// What the Unit of Work's transaction path costs against a bare sql.begin
// with the same statements: a reserved connection, the transaction id read
// with BEGIN (so a COMMIT lost with its connection can be resolved), and the
// event bookkeeping. Sequential transactions on the local server, variants
// alternated transaction by transaction, several rounds; prints min/median/max of
// the per-round ratio.
//
//   deno run -A --frozen bench/commit_check_cost.ts [rounds] [transactions]
import postgres from "postgres";
import { EventBus } from "../src/application/event_bus.ts";
import { PostgresUnitOfWork } from "../src/adapters/postgres/mod.ts";
import { reservedTransaction } from "../src/adapters/postgres/_transaction.ts";
import { createServerDatabase } from "../tests/_helpers/server_database.ts";

const rounds = Number(Deno.args[0] ?? 7);
const perRound = Number(Deno.args[1] ?? 2000);
const server = Deno.env.get("BENCH_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

class Noted {
  constructor(readonly id: number) {}
}

const db = await createServerDatabase(server, "aftercommit_bench");
const sql = postgres(db.url, { max: 4, onnotice: () => {} });
try {
  await sql`create table items (id bigint primary key)`;
  const bus = new EventBus();
  let handled = 0;
  bus.register(Noted, () => {
    handled++;
  });
  const uow = new PostgresUnitOfWork(sql, { bus });
  let next = 0;
  const variants: Record<string, () => Promise<unknown>> = {
    "bare sql.begin": () => {
      const id = next++;
      return sql.begin((tx) => tx`insert into items (id) values (${id})`);
    },
    // The Unit of Work's transaction path alone: reserved connection, BEGIN
    // with the transaction id read in its round trip, COMMIT.
    "reserved path": () => {
      const id = next++;
      return reservedTransaction(
        sql,
        "begin",
        async (tx) => await tx`insert into items (id) values (${id})`,
        () => Promise.resolve(false),
      );
    },
    // The same path without the transaction id query.
    "reserved, no id": () => {
      const id = next++;
      return reservedTransaction(
        sql,
        "begin",
        async (tx) => await tx`insert into items (id) values (${id})`,
      );
    },
    "uow.run": () => {
      const id = next++;
      return uow.run(async (tx) => {
        await tx.sql`insert into items (id) values (${id})`;
        tx.publishAfterCommit(new Noted(id));
      });
    },
  };
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(
    names.map((n) => [n, []]),
  );
  // Warm-up: prepared statements, connections.
  for (const name of names) {
    for (let i = 0; i < 300; i++) await variants[name]!();
  }
  // Each round alternates the variants transaction by transaction (in a
  // random order each time), so a change in the machine's load hits both
  // alike; a round's figure is the median latency of its transactions.
  for (let round = 0; round < rounds; round++) {
    const samples: Record<string, number[]> = Object.fromEntries(
      names.map((n) => [n, []]),
    );
    const start = next;
    for (let i = 0; i < perRound; i++) {
      const order = Math.random() < 0.5 ? names : [...names].reverse();
      for (const name of order) {
        const t0 = performance.now();
        await variants[name]!();
        samples[name]!.push((performance.now() - t0) * 1000);
      }
    }
    const [row] = await sql<{ count: number }[]>`
      select count(*)::int as count from items where id >= ${start} and id < ${next}`;
    if (row?.count !== perRound * names.length) {
      throw new Error(`round ${round}: ${row?.count} rows`);
    }
    for (const name of names) times[name]!.push(median(samples[name]!));
  }
  if (handled !== perRound * rounds + 300) {
    throw new Error(`handled ${handled} events`);
  }
  const base = times["bare sql.begin"]!;
  const ratio = (name: string) => {
    const r = times[name]!.map((t, i) => t / base[i]!).sort((a, b) => a - b);
    return `min ${r[0]!.toFixed(3)}, median ${
      r[Math.floor(r.length / 2)]!.toFixed(3)
    }, max ${r.at(-1)!.toFixed(3)}`;
  };
  const stat = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return `min ${s[0]!.toFixed(1)}, median ${
      s[Math.floor(s.length / 2)]!.toFixed(1)
    }, max ${s.at(-1)!.toFixed(1)}`;
  };
  // deno-lint-ignore no-console
  console.log(
    [
      `${rounds} rounds × ${perRound} sequential transactions per variant, alternated, one insert each`,
      ...names.map((name) =>
        `${name.padEnd(15)} median µs per transaction, over rounds: ${
          stat(times[name]!)
        }`
      ),
      ...names.filter((n) => n !== "bare sql.begin").map((name) =>
        `ratio ${name} / bare sql.begin per round: ${ratio(name)}`
      ),
    ].join("\n"),
  );
} finally {
  await sql.end();
  await db.drop();
}
