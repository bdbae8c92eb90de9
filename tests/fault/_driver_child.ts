// Runs one driver scenario and prints what happened as one JSON line.
// Started by driver_bugs_test.ts with the project's (patched) postgres.js or,
// with --config unpatched/deno.json, the npm release.
import postgres from "postgres";
import { EventBus } from "../../src/application/event_bus.ts";
import { PostgresUnitOfWork } from "../../src/adapters/postgres/postgres_unit_of_work.ts";

const [scenario, url] = Deno.args as [string, string];
const unhandled: string[] = [];
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  unhandled.push(String((event.reason as Error)?.message ?? event.reason));
});
const quiet = { onnotice: () => {} } as const;

function report(result: Record<string, unknown>): void {
  // deno-lint-ignore no-console
  console.log(JSON.stringify({ ...result, unhandled }));
}

// 100 queries already queued on a max: 1 client, then a transaction: its
// BEGIN fills the pipeline (porsager/postgres#1189). Pool
// queries made while it is open must not see its transaction id.
async function pipelineBoundary(path: "begin" | "uow"): Promise<void> {
  const sql = postgres(url, { ...quiet, max: 1 });
  const xids: Promise<string | null>[] = [];
  const probe = () =>
    xids.push(
      sql`select pg_current_xact_id_if_assigned()::text as x`.then(
        (rows) => rows[0]!.x as string | null,
        () => null,
      ),
    );
  await sql`select 1`; // the connection is open: queries pipeline on it
  for (let i = 0; i < 100; i++) probe();
  let own: string | undefined;
  let outcome = "resolved";
  const work = async (tx: postgres.TransactionSql) => {
    own = (await tx`select pg_current_xact_id()::text as x`)[0]!.x;
    for (let i = 0; i < 20; i++) probe();
    await tx`select pg_sleep(0.05)`;
  };
  try {
    if (path === "begin") await sql.begin(work);
    else {
      await new PostgresUnitOfWork(sql, { bus: new EventBus() }).run((tx) =>
        work(tx.sql)
      );
    }
  } catch (error) {
    outcome = `${(error as Error).name}: ${(error as Error).message} ${
      (error as Error).cause ?? ""
    }`;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const seen = await Promise.race([
    Promise.all(xids),
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), 5000);
    }),
  ]);
  clearTimeout(timer);
  report({
    outcome,
    settled: seen !== null,
    insideOtherTransaction: seen === null
      ? null
      : seen.filter((x) => x !== null && x === own).length,
  });
  await sql.end({ timeout: 1 });
}

// A reserved connection whose backend is killed, then used
// (porsager/postgres#1154, #1208): unpatched, the write throws in an
// immediate and the process dies.
async function reservedBackendDies(): Promise<void> {
  const sql = postgres(url, { ...quiet, max: 2 });
  const admin = postgres(url, { ...quiet, max: 1 });
  const reserved = await sql.reserve();
  const [row] = await reserved`select pg_backend_pid() as pid`;
  await admin`select pg_terminate_backend(${row!.pid})`;
  await new Promise((resolve) => setTimeout(resolve, 200));
  let outcome = "resolved";
  try {
    await reserved`select 1`;
  } catch (error) {
    outcome = `rejected ${(error as { code?: string }).code}`;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  report({ outcome });
  await Promise.all([sql.end({ timeout: 1 }), admin.end()]);
}

if (scenario === "reserved-backend-dies") await reservedBackendDies();
else await pipelineBoundary(scenario === "boundary-begin" ? "begin" : "uow");
