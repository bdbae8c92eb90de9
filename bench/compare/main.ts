// deno-lint-ignore-file no-console -- a script that reports its progress
// The side-by-side bench: aftercommit against the strongest configuration of
// each peer, on the same PostgreSQL server, in the same run.
//
//   deno task bench:compare            full run (minutes), writes docs/bench/
//   deno task bench:compare --quick    smoke run (< 60 s), writes to a temp dir
//   options: --only=a,b,c,d,e,f   --out=DIR   --repeats=N
//
// The server is BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
// every database the run uses is created with a random name and dropped at the end.
import {
  createDatabase,
  type Database,
  fmt,
  machine,
  markdown,
  median,
  type Report,
  type RunConfig,
  svg,
} from "./_lib.ts";
import { enqueueBench, latencyBench, throughputBench } from "./jobs.ts";
import { uowBench } from "./uow.ts";
import { publishBench } from "./publish.ts";
import { scaleBench } from "./scale.ts";

const args = new Map(
  Deno.args.map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=", 2);
    return [k!, v ?? "true"] as const;
  }),
);
const quick = args.has("quick");
// A smoke run: one repeat, no warm-up, small sizes (its figures mean little).
const repeats = Number(args.get("repeats") ?? (quick ? 1 : 5));
const only = new Set((args.get("only") ?? "a,b,c,d,e,f").split(","));
const out = args.get("out") ??
  (quick
    ? await Deno.makeTempDir({ prefix: "bench_compare_" })
    : new URL("../../docs/bench/", import.meta.url).pathname);
const config: RunConfig = { quick, repeats, warmUp: !quick };
const command = `deno task bench:compare${quick ? " --quick" : ""}${
  args.has("only") ? ` --only=${args.get("only")}` : ""
}${args.has("repeats") ? ` --repeats=${repeats}` : ""}`;

const log = (line: string) => console.log(line);
const started = new Date();
const host = await machine();
log(`${command}\n${host}\nwriting to ${out}`);

const databases: Database[] = [];
const fresh = async (prefix: string) => {
  const db = await createDatabase(prefix);
  databases.push(db);
  return db;
};
const reports: Report[] = [];
// The machine's load while the run goes: other processes on it slow the
// variants down unevenly, so the header says how busy it was.
const loads: number[] = [];
const readLoad = () =>
  Deno.readTextFile("/proc/loadavg").then(
    (text) => loads.push(Number(text.split(" ")[0])),
    () => {},
  );
await readLoad();
const loadTimer = setInterval(readLoad, 10_000);
const t0 = performance.now();
try {
  const steps: [string, () => Promise<Report | Report[]>][] = [
    [
      "a",
      async () =>
        uowBench(config, await fresh("app"), await fresh("jobs"), log),
    ],
    [
      "b",
      async () =>
        latencyBench(config, await fresh("app"), await fresh("jobs"), log),
    ],
    [
      "c",
      async () =>
        enqueueBench(config, await fresh("app"), await fresh("jobs"), log),
    ],
    [
      "d",
      async () =>
        throughputBench(config, await fresh("app"), await fresh("jobs"), log),
    ],
    ["e", () => publishBench(config, log)],
    [
      "f",
      async () =>
        scaleBench(config, await fresh("app"), await fresh("jobs"), log),
    ],
  ];
  for (const [id, step] of steps) {
    if (!only.has(id)) continue;
    log(`(${id}) …`);
    const result = await step();
    reports.push(...(Array.isArray(result) ? result : [result]));
  }
} finally {
  clearInterval(loadTimer);
  for (const db of databases) await db.drop().catch((e) => console.error(e));
}
await readLoad();

await Deno.mkdir(out, { recursive: true });
const sortedLoads = loads.toSorted((a, b) => a - b);
const load = sortedLoads.length === 0
  ? "load average unknown"
  : `1-minute load average ${fmt(median(loads))} (${fmt(sortedLoads[0]!)}–${
    fmt(sortedLoads.at(-1)!)
  }, read every 10 s) on ${navigator.hardwareConcurrency} cores`;
const header = `Measured ${
  started.toISOString().slice(0, 16).replace("T", " ")
} UTC on ${host}; ${load}. Command: \`${command}\`. ${repeats} repeat${
  repeats === 1 ? "" : "s"
}${
  quick ? "" : " after one warm-up round"
}, variants interleaved in a new random order each repeat; ratios are the median of the per-repeat ratios to the group's baseline (bold).`;
const index = [
  "# Side-by-side bench",
  "",
  header,
  "",
  "Each page has the table and the chart of one measurement. Reproduce with the command above (`deno task bench:compare`; it creates and drops its own databases on `BENCH_DATABASE_URL`, default the local server).",
  "",
];
for (const report of reports) {
  await Deno.writeTextFile(`${out}/${report.id}.md`, markdown(report, header));
  await Deno.writeTextFile(`${out}/${report.id}.svg`, svg(report));
  index.push(`- [${report.title}](${report.id}.md)`);
}
index.push(
  "",
  "The raw samples of every variant (one value per repeat) are in [samples.json](samples.json).",
  "",
);
await Deno.writeTextFile(
  `${out}/samples.json`,
  JSON.stringify(
    Object.fromEntries(
      reports.map((r) => [r.id, Object.fromEntries(r.samples)]),
    ),
    null,
    1,
  ) + "\n",
);
if (only.size === 6) {
  await Deno.writeTextFile(`${out}/README.md`, index.join("\n"));
}
// The pages as `deno fmt` writes them, so that a fresh run passes fmt --check.
await new Deno.Command(Deno.execPath(), {
  args: ["fmt", "--quiet", out],
  stdout: "inherit",
  stderr: "inherit",
}).output();
log(`${load}`);
log(
  `done in ${
    ((performance.now() - t0) / 1000).toFixed(1)
  } s; wrote ${reports.length} reports to ${out}`,
);
