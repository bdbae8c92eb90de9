// deno-lint-ignore-file no-console -- prints the table
// The README's Speed table, built from the samples of the last
// `deno task bench:compare` (docs/bench/samples.json), so that every figure
// in it is one the harness measured:
//
//   deno run -A --config bench/bench.json bench/compare/readme_table.ts [samples.json]
const path = Deno.args[0] ??
  new URL("../../docs/bench/samples.json", import.meta.url).pathname;
type Samples = Record<string, Record<string, Record<string, number[]>>>;
const samples = JSON.parse(await Deno.readTextFile(path)) as Samples;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function format(value: number, unit: string): string {
  const fixed = (digits: number) =>
    value.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  if (unit === "ms") {
    return value < 10 ? value.toPrecision(3) : fixed(value < 100 ? 1 : 0);
  }
  if (unit === "ns") return fixed(value < 100 ? 1 : 0);
  return fixed(0);
}

function figure(values: number[], unit: string): string {
  const suffix = unit === "/s" ? "" : ` ${unit}`;
  return `${format(median(values), unit)}${suffix} (${
    format(Math.min(...values), unit)
  }–${format(Math.max(...values), unit)})`;
}

const rows: string[] = [];
function row(
  label: string,
  [section, key, unit]: [string, string, string],
  ours: string,
  peer: string,
  peerLabel: string,
  goal = "—",
) {
  const a = samples[section]![ours]![key]!;
  const b = samples[section]![peer]![key]!;
  const ratios = a.map((x, i) => x / b[i]!);
  const r = (x: number) => `${x.toFixed(2)}×`;
  rows.push(
    `| ${label} | ${figure(a, unit)} | ${peerLabel}: ${figure(b, unit)} | ${
      r(median(ratios))
    } (${Math.min(...ratios).toFixed(2)}–${
      Math.max(...ratios).toFixed(2)
    }) | ${goal} |`,
  );
}

const uow: [string, string, string] = ["a_unit_of_work", "us", "µs"];
for (const [n, s] of [[1, "1 event"], [10, "10 events"]] as const) {
  const outbox = `aftercommit uow.run, outbox mode, ${s}`;
  const label = `\`uow.run\`, outbox mode, ${s}`;
  const bare = `bare sql.begin, same inserts, ${s}`;
  row(label, uow, outbox, bare, "bare `sql.begin`, same INSERT");
  row(
    label,
    uow,
    outbox,
    `bare sql.begin, outbox mode's statements, ${s}`,
    "bare `sql.begin`, outbox mode's statements",
    n === 1 ? "≤ 1.5×" : "—",
  );
  row(
    label,
    uow,
    outbox,
    `hand-written outbox, ${s}`,
    "hand-written outbox",
    n === 1 ? "≤ 0.8×" : "—",
  );
}
for (const s of ["1 event", "10 events"]) {
  row(
    `\`uow.run\`, plain mode, ${s}`,
    uow,
    `aftercommit uow.run, plain mode, ${s}`,
    `bare sql.begin, same inserts, ${s}`,
    "bare `sql.begin`, same INSERT",
    "≤ 1.05×",
  );
}

const path_ = (mode: string) =>
  `aftercommit ${mode} mode → bus → BatchingJobQueue → worker`;
const graphile = "graphile-worker add_job in the app transaction";
const graphileLabel = "graphile-worker `add_job` in the app transaction";
const p50: [string, string, string] = ["b_latency", "p50", "ms"];
row(
  "commit → job start, outbox mode, p50",
  p50,
  path_("outbox"),
  graphile,
  graphileLabel,
  "≤ 1.0×",
);
row(
  "commit → job start, outbox mode, p50",
  p50,
  path_("outbox"),
  "pg-boss insert in the app transaction (LISTEN/NOTIFY, polling 0.5 s)",
  "pg-boss `insert` in the app transaction",
);
row(
  "commit → job start, outbox mode, p99",
  ["b_latency", "p99", "ms"],
  path_("outbox"),
  graphile,
  graphileLabel,
);
row(
  "commit → job start, plain mode, p50",
  p50,
  path_("plain"),
  graphile,
  graphileLabel,
  "≤ 1.0×",
);

const enqueue: [string, string, string] = ["c_enqueue", "ms", "ms"];
for (const n of [1000, 10000]) {
  const label = `enqueue ${
    n.toLocaleString("en-US")
  } jobs from one \`publishAll\``;
  const ours = `aftercommit publishAll → BatchingJobQueue, ${n} jobs`;
  row(
    label,
    enqueue,
    ours,
    `pg-boss insert, ${n} jobs`,
    "pg-boss `insert`, its default queue",
    "≤ 1.0×",
  );
  row(
    label,
    enqueue,
    ours,
    `pg-boss insert, queue with the adapter's settings, ${n} jobs`,
    "pg-boss `insert`, a queue with the adapter's settings",
  );
  row(
    label,
    enqueue,
    ours,
    `graphile-worker addJobs, ${n} jobs`,
    "graphile-worker `addJobs`",
  );
}

const jobsPerSecond: [string, string, string] = [
  "d_throughput",
  "jobsPerSecond",
  "/s",
];
const tuned = "aftercommit worker, tuned (batchSize 100, concurrency 4)";
row(
  "no-op jobs/s, worker defaults (no options)",
  jobsPerSecond,
  "aftercommit worker, defaults",
  "graphile-worker, concurrency 4",
  "graphile-worker, concurrency 4",
  "≥ 1.0×",
);
row(
  "no-op jobs/s, tuned (batchSize 100, concurrency 4)",
  jobsPerSecond,
  tuned,
  "graphile-worker, tuned (concurrency 8, localQueue 100, completeJobBatchDelay 0, pollInterval 100 ms)",
  "graphile-worker tuned",
  "≥ 1.2×",
);
row(
  "no-op jobs/s, tuned (batchSize 100, concurrency 4)",
  jobsPerSecond,
  tuned,
  "pg-boss, tuned (batchSize 100, localConcurrency 4, polling 0.5 s, burst)",
  "pg-boss tuned",
  "≥ 1.2×",
);

const perSecond: [string, string, string] = ["f_scale_out", "perSecond", "/s"];
for (
  const [what, name, unit] of [
    ["worker", "aftercommit worker processes (defaults)", "jobs/s"],
    ["relay", "aftercommit relay processes", "events/s"],
  ]
) {
  for (const n of [2, 4]) {
    row(
      `${what} processes: ${n} (${unit})`,
      perSecond,
      `${name}: ${n}`,
      `${name}: 1`,
      `1 ${what} process`,
      "curve",
    );
  }
}

const publish: [string, string, string] = ["e_publish", "ns", "ns"];
for (const h of ["1 handler", "3 handlers"]) {
  row(
    `\`publishAll([e])\`, ${h}`,
    publish,
    `aftercommit publishAll([e]), ${h}`,
    `hand-written awaited loop, ${h}`,
    "hand-written awaited loop",
    "≤ 1.1×",
  );
  row(
    `\`publish\`, ${h}`,
    publish,
    `aftercommit publish, ${h}`,
    `emittery emitSerial, ${h}`,
    "emittery `emitSerial`",
  );
}

console.log(
  [
    "| measurement | aftercommit, median (min–max) | compared with (same run), median (min–max) | ratio, median (min–max) of per-repeat ratios | goal (issue 11) |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n"),
);
