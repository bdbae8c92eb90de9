// deno-lint-ignore-file no-console
// The dev server's cold start on embedded databases, and where the time goes:
//
//   deno run -A --frozen bench/dev_server_cold_start.ts [runs=3] [--cold] [--base=<rev>] [--lazy-npm]
//
// Every start is `deno task dev` as a user types it, in a fresh `git clone`
// of this repository's HEAD (what a user gets; uncommitted changes are not
// measured), timed from the spawn to GET /health answering 200:
//
// - new machine (with --cold): an empty DENO_DIR and an empty
//   XDG_CACHE_HOME, so the npm packages are downloaded, unpacked and linked
//   into node_modules before anything runs, and the dev server makes its
//   template of new databases (one initdb). Bound by the network and the
//   disk: a figure for this machine only;
// - cold cache (with --cold): an empty DENO_DIR, the templates kept;
// - warm Deno cache, fresh clone: the packages are in the Deno cache (as on
//   a machine that ran Deno before), node_modules is set up from it;
// - new data folder: node_modules in place, both PGlite databases created;
// - existing data folder: every later start.
//
// With --base=<rev> (a commit of this repository), every kind of start also
// runs in a clone checked out at <rev>, interleaved with HEAD's: a before
// and after in one run, under the same load.
//
// With --lazy-npm, each of the first three also runs in a clone whose
// deno.json is changed as a proposal: "nodeModulesDir": "manual" (so
// `deno task` does not install every package of deno.lock before the task
// runs) and the dev task with `--node-modules-dir=auto
// --unstable-npm-lazy-caching` (so it installs only what the dev server
// imports).
//
// The runs of each kind are interleaved, so load from other work on the
// machine hits them alike. The columns are when each step ended, from the
// lines the process prints (LOG_LEVEL=debug): the npm packages in place,
// main.ts running, the app's modules loaded, the application database up,
// both databases ready (the outbox relay starts after them), listening; and
// the CPU time the process tree used until ready (from /proc), which the
// load does not change: on an idle machine a start takes at least that
// divided by the cores it keeps busy (the two databases are created at
// once, on two). Then
// the parts, in this process: a bare `deno eval`, PGlite.create() of a new
// database (initdb) and of an existing one, and pg-boss's start on a new
// database (its schema) and on an existing one.
import { PGlite } from "@electric-sql/pglite";
import { PgBossJobQueue } from "../src/adapters/pg-boss/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const args = Deno.args.filter((a) => !a.startsWith("--"));
const RUNS = Number(args[0] ?? 3);
const COLD = Deno.args.includes("--cold");
const LAZY = Deno.args.includes("--lazy-npm");
const BASE = Deno.args.find((a) => a.startsWith("--base="))?.slice(7);

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

interface Start {
  totalMs: number;
  /** Milliseconds from the spawn to the end of each step. */
  marks: Record<string, number>;
  /** npm packages downloaded and set up in node_modules. */
  downloaded: number;
  initialized: number;
  /** CPU time (user + system) of the process tree until ready (Linux). */
  cpuMs: number | undefined;
}

const STEPS = [
  "npm packages",
  "main.ts runs",
  "modules loaded",
  "app database up",
  "both databases ready",
  "listening",
] as const;

/** Reads lines from a stream, calling `onLine` with each as it arrives. */
async function lines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + text).split("\n");
    rest = parts.pop()!;
    parts.forEach(onLine);
  }
  if (rest) onLine(rest);
}

/**
 * CPU time used so far by `pid` and its descendants, from /proc (Linux;
 * undefined elsewhere). Independent of the load: on an idle machine a start
 * cannot take less than this divided by the cores it keeps busy.
 */
async function cpuOfTree(pid: number): Promise<number | undefined> {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  try {
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const text = await Deno.readTextFile(`/proc/${entry.name}/stat`);
        // After "pid (comm) ": state ppid ... utime (14th) stime (15th).
        const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
        stats.set(Number(entry.name), {
          ppid: Number(f[1]),
          ticks: Number(f[11]) + Number(f[12]),
        });
      } catch {
        // Exited meanwhile.
      }
    }
  } catch {
    return undefined;
  }
  let ticks = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    ticks += stats.get(p)?.ticks ?? 0;
    for (const [child, st] of stats) if (st.ppid === p) todo.push(child);
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

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
      LOG_LEVEL: "debug",
      DATABASE_URL: "",
      JOB_QUEUE_DATABASE_URL: "",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const marks: Record<string, number> = {};
  let downloaded = 0;
  let initialized = 0;
  const output: string[] = [];
  const onLine = (line: string) => {
    const at = performance.now() - started;
    output.push(line);
    if (/^Download .*\.tgz$/.test(line)) downloaded++;
    if (/^Initialize /.test(line)) initialized++;
    if (/^(Download|Initialize) /.test(line)) marks["npm packages"] = at;
    let m;
    if ((m = /main\.ts began \d+ ms .*loaded (\d+) ms later/.exec(line))) {
      marks["modules loaded"] = at;
      marks["main.ts runs"] = at - Number(m[1]);
    }
    if (/Started embedded PostgreSQL/.test(line)) {
      marks["app database up"] ??= at;
    }
    if (/Outbox relay started/.test(line)) marks["both databases ready"] = at;
    if (/Listening on/.test(line)) marks["listening"] = at;
  };
  const reading = Promise.all([
    lines(child.stdout, onLine),
    lines(child.stderr, onLine),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  try {
    for (;;) {
      if (exited) {
        await reading;
        throw new Error(
          `deno task dev exited before answering:\n${
            output.slice(-15).join("\n")
          }`,
        );
      }
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        await res.body?.cancel();
        if (res.status === 200) break;
      } catch {
        // Not listening yet.
      }
      if (performance.now() - started > 300_000) throw new Error("no start");
      await new Promise((r) => setTimeout(r, 10));
    }
    const totalMs = performance.now() - started;
    const cpuMs = await cpuOfTree(child.pid);
    return { totalMs, marks, downloaded, initialized, cpuMs };
  } finally {
    if (!exited) child.kill("SIGTERM");
    await status;
    await reading;
  }
}

const s = (ms: number | undefined) =>
  ms === undefined || Number.isNaN(ms) ? "–" : `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function row(name: string, starts: Start[]): string {
  const mark = (m: string) => {
    const xs = starts.map((x) => x.marks[m]).filter((x) => x !== undefined);
    return xs.length ? s(median(xs)) : "–";
  };
  const totals = starts.map((x) => x.totalMs);
  const pkgs = `${median(starts.map((x) => x.downloaded))} / ${
    median(starts.map((x) => x.initialized))
  }`;
  const cpu = starts.flatMap((x) => x.cpuMs === undefined ? [] : [x.cpuMs]);
  return `| ${name} | **${s(median(totals))}** | ${
    STEPS.map(mark).join(" | ")
  } | ${pkgs} | ${cpu.length ? s(median(cpu)) : "–"} | ${
    s(Math.min(...totals))
  } – ${s(Math.max(...totals))} |`;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function gitOut(...gitArgs: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args: gitArgs }).output();
  if (!out.success) {
    throw new Error(
      `git ${gitArgs.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout).trim();
}
const git = async (...gitArgs: string[]) => void await gitOut(...gitArgs);

const head = await gitOut("-C", ROOT, "rev-parse", "--short", "HEAD");
const base = BASE &&
  await gitOut("-C", ROOT, "rev-parse", "--short", `${BASE}^{commit}`);
const loadBefore = Deno.loadavg().map((x) => x.toFixed(1)).join(", ");

const tmp = await Deno.makeTempDir({ prefix: "aftercommit-coldstart-" });
let clones = 0;
/** A fresh clone of HEAD, or checked out at `rev`. */
async function freshClone(rev?: string): Promise<string> {
  const dir = `${tmp}/clone-${clones++}`;
  await git("clone", "-q", ROOT, dir);
  if (rev) await git("-C", dir, "checkout", "-q", "--detach", rev);
  return dir;
}

// The parts, in this process (warm Deno cache).
const bare = await time(() =>
  new Deno.Command(Deno.execPath(), { args: ["eval", "0"] }).output()
);
const newDb = await time(async () => {
  const db = await PGlite.create(`${tmp}/one`);
  await db.close();
});
const existingDb = await time(async () => {
  const db = await PGlite.create(`${tmp}/one`);
  await db.close();
});
const bossOn = async (dir: string) => {
  const db = await PGlite.create(dir);
  try {
    return await time(async () => {
      const jobs = await PgBossJobQueue.connect(db, {});
      await jobs.stop();
    });
  } finally {
    await db.close();
  }
};
const bossNew = await bossOn(`${tmp}/jobs`);
const bossExisting = await bossOn(`${tmp}/jobs`);

/** A fresh clone changed as --lazy-npm describes. */
async function lazyClone(): Promise<string> {
  const dir = await freshClone();
  const path = `${dir}/deno.json`;
  const config = JSON.parse(await Deno.readTextFile(path));
  config.nodeModulesDir = "manual";
  config.tasks.dev = config.tasks.dev.replace(
    /^deno run /,
    "deno run --node-modules-dir=auto --unstable-npm-lazy-caching ",
  );
  await Deno.writeTextFile(path, JSON.stringify(config));
  return dir;
}

/** What is measured: HEAD, --base's commit, --lazy-npm's change of HEAD. */
interface Variant {
  label: string;
  clone: () => Promise<string>;
  /** Also the data-folder starts (a clone with node_modules installed). */
  dataFolder: boolean;
  newMachine: Start[];
  cold: Start[];
  cloned: Start[];
  fresh: Start[];
  again: Start[];
}
const variant = (
  label: string,
  clone: () => Promise<string>,
  dataFolder: boolean,
): Variant => ({
  label,
  clone,
  dataFolder,
  newMachine: [],
  cold: [],
  cloned: [],
  fresh: [],
  again: [],
});
const variants = [
  variant(head, () => freshClone(), true),
  ...(base ? [variant(base, () => freshClone(base), true)] : []),
  ...(LAZY
    ? [variant(`${head} with --lazy-npm's deno.json`, lazyClone, false)]
    : []),
];

const rows: string[] = [];
try {
  // The clones the data-folder starts run in: node_modules installed in
  // full (as a developer's tree has it).
  const trees = new Map<Variant, string>();
  for (const v of variants.filter((v) => v.dataFolder)) {
    const tree = await v.clone();
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["install", "--frozen", "--quiet"],
      cwd: tree,
    }).output();
    if (!install.success) throw new Error("deno install --frozen failed");
    trees.set(v, tree);
  }
  let n = 0;
  for (let i = 0; i < RUNS; i++) {
    for (const v of variants) {
      n++;
      if (COLD) {
        v.newMachine.push(
          await start(await v.clone(), {
            DENO_DIR: `${tmp}/new-deno-dir-${n}`,
            XDG_CACHE_HOME: `${tmp}/new-cache-${n}`,
            DATA_DIR: `${tmp}/new-data-${n}`,
          }),
        );
        v.cold.push(
          await start(await v.clone(), {
            DENO_DIR: `${tmp}/deno-dir-${n}`,
            DATA_DIR: `${tmp}/cold-data-${n}`,
          }),
        );
      }
      v.cloned.push(
        await start(await v.clone(), { DATA_DIR: `${tmp}/cloned-data-${n}` }),
      );
      const tree = trees.get(v);
      if (tree) {
        const dataDir = `${tmp}/data-${n}`;
        v.fresh.push(await start(tree, { DATA_DIR: dataDir }));
        v.again.push(await start(tree, { DATA_DIR: dataDir }));
      }
    }
  }
  const kinds = [
    [
      "new machine: fresh clone, empty DENO_DIR and template cache",
      "newMachine",
    ],
    ["cold cache: fresh clone, empty DENO_DIR", "cold"],
    ["warm Deno cache, fresh clone (no node_modules)", "cloned"],
    ["warm cache, new data folder", "fresh"],
    ["warm cache, existing data folder", "again"],
  ] as const;
  for (const [name, kind] of kinds) {
    for (const v of variants) {
      if (v[kind].length > 0) rows.push(row(`${name}: ${v.label}`, v[kind]));
    }
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}

const load = Deno.loadavg().map((x) => x.toFixed(1)).join(", ");
console.log(
  `\nDev server start on embedded databases: \`deno task dev\` to GET /health 200, median of ${RUNS} (min – max); load average ${loadBefore} before, ${load} after\n`,
);
console.log(
  `| start | total | ${
    STEPS.join(" | ")
  } | npm packages downloaded / set up | CPU time | range |`,
);
console.log(
  `| --- | --- | ${STEPS.map(() => "---").join(" | ")} | --- | --- | --- |`,
);
for (const r of rows) console.log(r);
console.log(
  `\nParts (in one process, warm cache): \`deno eval 0\` ${s(bare)}; ` +
    `PGlite.create() of a new database ${s(newDb)}, of an existing one ${
      s(existingDb)
    }; pg-boss start on a new database ${s(bossNew)}, on an existing one ${
      s(bossExisting)
    }`,
);
