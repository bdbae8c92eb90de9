// The overhead the Unit of Work adds to a bare `sql.begin` transaction doing
// the same insert, with one tracked aggregate and one event to a no-op handler.
//
// Runs on BENCH_DATABASE_URL (default: the local server) in a temporary
// database, dropped at exit; on embedded PGlite when the server is out of
// reach.
import postgres from "postgres";
import {
  AggregateRoot,
  DomainEvent,
  EventBus,
  UnitOfWork,
  type UnitOfWorkContext,
} from "../mod.ts";
import { PostgresUnitOfWork } from "../src/adapters/postgres/mod.ts";
import { startEmbeddedPostgres } from "../src/adapters/pglite/mod.ts";

class ItemCreated extends DomainEvent {
  constructor(readonly itemId: string) {
    super();
  }
}

class Item extends AggregateRoot {
  private constructor(readonly id: string, readonly name: string) {
    super();
  }
  static create(name: string): Item {
    const item = new Item(crypto.randomUUID(), name);
    item.recordEvent(new ItemCreated(item.id));
    return item;
  }
}

const quiet = { onnotice: () => {} } as const;

async function openBenchDatabase(): Promise<
  { sql: postgres.Sql; backend: string }
> {
  const serverUrl = Deno.env.get("BENCH_DATABASE_URL") ??
    "postgres://postgres@127.0.0.1:5432/postgres";
  const admin = postgres(serverUrl, { ...quiet, max: 1, connect_timeout: 3 });
  const name = `aftercommit_bench_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 12)
  }`;
  try {
    await admin.unsafe(`create database "${name}"`);
  } catch {
    await admin.end({ timeout: 1 }).catch(() => {});
    const db = await startEmbeddedPostgres();
    return { sql: db.connect(postgres), backend: "embedded PGlite" };
  }
  await admin.end();
  // deno bench has no teardown hook, and `unload` listeners cannot await:
  // drop the database from a short synchronous child process at exit.
  globalThis.addEventListener("unload", () => {
    new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import postgres from "postgres";
         const sql = postgres(${
          JSON.stringify(serverUrl)
        }, { max: 1, onnotice: () => {} });
         await sql.unsafe('drop database if exists "${name}" with (force)');
         await sql.end();`,
      ],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "null",
      stderr: "inherit",
    }).outputSync();
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    sql: postgres(url.href, { ...quiet, max: 1 }),
    backend: `server ${url.host}`,
  };
}

const { sql, backend } = await openBenchDatabase();
// One table per bench: each starts from an empty table and grows the same
// way, so the second bench does not pay for the first one's rows.
await sql`create table items_bare (id uuid primary key, name text not null)`;
await sql`create table items_uow (id uuid primary key, name text not null)`;

const bus = new EventBus();
bus.register(ItemCreated, () => {});
const uow = new PostgresUnitOfWork(sql, { bus });
// Round trips to a server vary by hundreds of microseconds: many iterations
// keep the ratio from being noise.
const ITERATIONS = 5_000;
const WARMUP = 500;
const group = `transaction with one insert (${backend})`;

Deno.bench({
  name: "bare sql.begin",
  group,
  baseline: true,
  n: ITERATIONS,
  warmup: WARMUP,
  async fn() {
    await sql.begin(async (tx) => {
      await tx`insert into items_bare (id, name) values (${crypto.randomUUID()}, ${"bench"})`;
    });
  },
});

Deno.bench({
  name: "UnitOfWork.run + 1 tracked aggregate + 1 event to a no-op handler",
  group,
  n: ITERATIONS,
  warmup: WARMUP,
  async fn() {
    await uow.run(async (tx) => {
      const item = tx.track(Item.create("bench"));
      await tx
        .sql`insert into items_uow (id, name) values (${item.id}, ${item.name})`;
    });
  },
});

// The same bookkeeping without a database: what the Unit of Work itself costs
// per run (tracking, collecting, publishing to a no-op handler, logging calls).
type NoHandle = null;
const fakeBegin = async <T>(body: (h: NoHandle) => Promise<T>): Promise<T> => {
  await null; // BEGIN
  const result = await body(null);
  await null; // COMMIT
  return result;
};

class NoDatabaseUnitOfWork extends UnitOfWork<NoHandle, UnitOfWorkContext> {
  protected override transaction<T>(
    body: (h: NoHandle) => Promise<T>,
  ): Promise<T> {
    return fakeBegin(body);
  }
  protected override createContext(
    _handle: NoHandle,
    context: UnitOfWorkContext,
  ): UnitOfWorkContext {
    return context;
  }
}

const noDatabase = new NoDatabaseUnitOfWork({ bus });

Deno.bench({
  name: "bare fake transaction",
  group: "bookkeeping alone (no database)",
  baseline: true,
  async fn() {
    await fakeBegin(async () => {
      crypto.randomUUID();
      await null;
    });
  },
});

Deno.bench({
  name: "UnitOfWork.run on a fake transaction + 1 aggregate + 1 event",
  group: "bookkeeping alone (no database)",
  async fn() {
    await noDatabase.run(async (tx) => {
      tx.track(Item.create("bench"));
      await null;
    });
  },
});
