// deno-lint-ignore-file no-console
// The dev server's cold start on embedded databases, and where the time goes:
//
//   deno run -A --frozen bench/dev_server_cold_start.ts [runs=3] [--cold]
//
// 1. warm Deno cache, a new data folder (the first `deno task dev`);
// 2. warm Deno cache, the same folder again (every later start);
// 3. with --cold: a fresh `git clone` of this repository's HEAD and an empty
//    DENO_DIR, so npm packages are downloaded first (the first start on a new
//    machine);
// and the parts: a bare `deno run` of an empty script, PGlite.create() of
// one new database, and of two at once (the app and jobs databases).
// Times are from spawning the process to GET /health answering 200, with
// the moment each start-up log line appeared.
import { PGlite } from "@electric-sql/pglite";

const ROOT = new URL("../", import.meta.url).pathname;
const args = Deno.args.filter((a) => a !== "--cold");
const RUNS = Number(args[0] ?? 3);
const COLD = Deno.args.includes("--cold");

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

interface Start {
  totalMs: number;
  /** Milliseconds from spawn to the first appearance of each marker. */
  marks: Record<string, number>;
}

const MARKERS: [string, RegExp][] = [
  ["app PGlite up", /Started embedded PostgreSQL/],
  ["relay started", /Outbox relay started/],
  ["listening", /Listening on/],
];

async function start(
  cwd: string,
  env: Record<string, string>,
): Promise<Start> {
  const port = freePort();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "dev"],
    cwd,
    env: {
      PORT: String(port),
      NO_COLOR: "1",
      DATABASE_URL: "",
      JOB_QUEUE_DATABASE_URL: "",
      ...env,
    },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const marks: Record<string, number> = {};
  const reading = (async () => {
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      for (const [name, pattern] of MARKERS) {
        if (marks[name] === undefined && pattern.test(text)) {
          marks[name] = performance.now() - started;
        }
      }
    }
  })();
  try {
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        await res.body?.cancel();
        if (res.status === 200) break;
      } catch {
        // Not listening yet.
      }
      if (performance.now() - started > 180_000) throw new Error("no start");
      await new Promise((r) => setTimeout(r, 10));
    }
    return { totalMs: performance.now() - started, marks };
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
  }
}

const s = (ms: number | undefined) =>
  ms === undefined ? "–" : `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function row(name: string, starts: Start[]): string {
  const mark = (m: string) => s(median(starts.map((x) => x.marks[m] ?? NaN)));
  return `| ${name} | ${s(median(starts.map((x) => x.totalMs)))} | ${
    mark("app PGlite up")
  } | ${mark("relay started")} | ${mark("listening")} | ${
    starts.map((x) => s(x.totalMs)).join(", ")
  } |`;
}

// The parts.
async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}
const bare = await time(() =>
  new Deno.Command(Deno.execPath(), { args: ["eval", "0"] }).output()
);
const tmp = await Deno.makeTempDir({ prefix: "aftercommit-coldstart-" });
const one = await time(async () => {
  const db = await PGlite.create(`${tmp}/one`);
  await db.close();
});
const reopen = await time(async () => {
  const db = await PGlite.create(`${tmp}/one`);
  await db.close();
});
const two = await time(async () => {
  const dbs = await Promise.all([
    PGlite.create(`${tmp}/a`),
    PGlite.create(`${tmp}/b`),
  ]);
  await Promise.all(dbs.map((db) => db.close()));
});

const rows: string[] = [];
try {
  const fresh: Start[] = [];
  const again: Start[] = [];
  for (let i = 0; i < RUNS; i++) {
    const dataDir = `${tmp}/data-${i}`;
    fresh.push(await start(ROOT, { DATA_DIR: dataDir }));
    again.push(await start(ROOT, { DATA_DIR: dataDir }));
  }
  rows.push(row("warm cache, new data folder", fresh));
  rows.push(row("warm cache, existing data folder", again));
  if (COLD) {
    const clone = `${tmp}/clone`;
    const git = await new Deno.Command("git", {
      args: ["clone", "-q", ROOT, clone],
    }).output();
    if (!git.success) throw new Error("git clone failed");
    const cold = await start(clone, {
      DENO_DIR: `${tmp}/deno-dir`,
      DATA_DIR: `${tmp}/cold-data`,
    });
    rows.push(row("cold cache (fresh clone, empty DENO_DIR)", [cold]));
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}

console.log(
  `\nDev server cold start on embedded databases (median of ${RUNS})\n`,
);
console.log(
  "| start | to GET /health 200 | app PGlite up | relay started | listening | runs |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
console.log(
  `\nParts: \`deno eval 0\` ${s(bare)}; PGlite.create() of a new database ${
    s(one)
  }, reopening it ${s(reopen)}, two new ones at once ${s(two)}`,
);
