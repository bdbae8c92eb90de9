// deno-lint-ignore-file no-console
// The dev server's speed, in one run:
//   1. cold start to the first served request (GET /health answering 200),
//      on embedded PGlite and on the PostgreSQL server;
//   2. POST /users latency, p50 and p99 over sequential requests, on both,
//      and on the server with and without the transactional outbox.
//
//   deno run -A --frozen bench/dev_server_latency.ts [requests=1000]
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
// names the server; the script creates its own databases and drops them.
import postgres from "postgres";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("src/dev/main.ts", ROOT);
const SERVER = Deno.env.get("BENCH_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const REQUESTS = Number(Deno.args[0] ?? 1000);

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

interface Run {
  coldStartMs: number;
  p50: number;
  p99: number;
  mean: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function measure(
  env: Record<string, string>,
  requests: number,
): Promise<Run> {
  const port = freePort();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--frozen", MAIN.pathname],
    cwd: ROOT.pathname,
    env: { PORT: String(port), LOG_LEVEL: "warning", ...env },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  let coldStartMs = NaN;
  try {
    for (;;) {
      try {
        const res = await fetch(`${base}/health`);
        await res.body?.cancel();
        if (res.status === 200) {
          coldStartMs = performance.now() - started;
          break;
        }
      } catch {
        // Not listening yet.
      }
      if (performance.now() - started > 60_000) {
        throw new Error("no start in 60 s");
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const times: number[] = [];
    const tag = crypto.randomUUID().slice(0, 8);
    for (let i = -50; i < requests; i++) {
      const t = performance.now();
      const res = await fetch(`${base}/users`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          email: `bench.${tag}.${i + 50}@example.org`,
          name: "Bench",
        }),
      });
      await res.body?.cancel();
      if (res.status !== 201) {
        throw new Error(`POST /users answered ${res.status}`);
      }
      if (i >= 0) times.push(performance.now() - t); // the first 50 warm up
    }
    times.sort((a, b) => a - b);
    return {
      coldStartMs,
      p50: percentile(times, 0.5),
      p99: percentile(times, 0.99),
      mean: times.reduce((a, b) => a + b, 0) / times.length,
    };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

async function withServerDatabases<T>(
  fn: (env: Record<string, string>) => Promise<T>,
): Promise<T> {
  const admin = postgres(SERVER, { max: 1, onnotice: () => {} });
  const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 10);
  const names = [
    `aftercommit_bench_app_${suffix}`,
    `aftercommit_bench_jobs_${suffix}`,
  ];
  try {
    for (const name of names) await admin.unsafe(`create database "${name}"`);
    const url = (name: string) => {
      const u = new URL(SERVER);
      u.pathname = `/${name}`;
      return u.href;
    };
    return await fn({
      DATABASE_URL: url(names[0]!),
      JOB_QUEUE_DATABASE_URL: url(names[1]!),
    });
  } finally {
    for (const name of names) {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
    }
    await admin.end();
  }
}

const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
const rows: [string, Run][] = [];

const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-bench-" });
try {
  rows.push([
    "embedded PGlite",
    await measure({
      DATA_DIR: dataDir,
      DATABASE_URL: "",
      JOB_QUEUE_DATABASE_URL: "",
    }, REQUESTS),
  ]);
} finally {
  await Deno.remove(dataDir, { recursive: true });
}
for (const outbox of [false, true]) {
  rows.push([
    `PostgreSQL server, outbox ${outbox ? "on" : "off"}`,
    await withServerDatabases((env) =>
      measure({ ...env, OUTBOX: String(outbox) }, REQUESTS)
    ),
  ]);
}

console.log(
  `\nPOST /users over ${REQUESTS} sequential requests (after 50 warm-up)\n`,
);
console.log("| backend | cold start → first request | p50 | p99 | mean |");
console.log("| --- | --- | --- | --- | --- |");
for (const [name, r] of rows) {
  console.log(
    `| ${name} | ${fmt(r.coldStartMs)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${
      fmt(r.mean)
    } |`,
  );
}
const off = rows.find(([n]) => n.endsWith("outbox off"))![1];
const on = rows.find(([n]) => n.endsWith("outbox on"))![1];
console.log(`\noutbox on ÷ off, p50: ${(on.p50 / off.p50).toFixed(2)}×`);
