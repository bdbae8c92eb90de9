// Shared parts of the side-by-side bench: throwaway databases, interleaved
// repeats, statistics, and the markdown/SVG report of one measurement.
import postgres from "postgres";

/** The server every variant runs on. */
export const SERVER_URL = Deno.env.get("BENCH_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/** Options of one harness run. */
export interface RunConfig {
  readonly quick: boolean;
  readonly repeats: number;
  /** Whether a shuffled, untimed round runs before the repeats. */
  readonly warmUp: boolean;
}

/** A database created for the run; `drop()` removes it with force. */
export interface Database {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

/** Creates `bench_<prefix>_<random>` on the server. */
export async function createDatabase(prefix: string): Promise<Database> {
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const name = `bench_${prefix}_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 10)
  }`;
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.href,
    async drop() {
      const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Fisher–Yates, in place. */
export function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** The nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(
    sorted.length - 1,
    Math.ceil((p / 100) * sorted.length) - 1,
  );
  return sorted[Math.max(0, i)]!;
}

/** Median of unsorted values. */
export function median(values: readonly number[]): number {
  return percentile(values.toSorted((a, b) => a - b), 50);
}

/** A variant of one measurement. `sample` runs one repeat of it. */
export interface Variant {
  /** Row label, naming the library and its configuration. */
  readonly name: string;
  /** Runs one repeat and returns its figures (one number per metric). */
  sample(): Promise<Record<string, number>>;
}

/** The samples of every variant, per metric, in repeat order. */
export type Samples = Map<string, Record<string, number[]>>;

/**
 * Runs every variant `config.repeats` times, each repeat in a fresh
 * shuffled order, after one untimed warm-up round (also shuffled) unless
 * `config.warmUp` is false.
 */
export async function interleave(
  variants: readonly Variant[],
  config: RunConfig,
  log: (line: string) => void,
): Promise<Samples> {
  const { repeats } = config;
  const samples: Samples = new Map();
  for (const v of variants) samples.set(v.name, {});
  for (let r = config.warmUp ? -1 : 0; r < repeats; r++) {
    for (const v of shuffle([...variants])) {
      if (Deno.env.get("BENCH_DEBUG")) log(`  start ${v.name}`);
      const figures = await v.sample();
      if (r < 0) continue;
      const bucket = samples.get(v.name)!;
      for (const [metric, value] of Object.entries(figures)) {
        (bucket[metric] ??= []).push(value);
      }
      log(
        `  [${r + 1}/${repeats}] ${v.name}: ${
          Object.entries(figures).map(([k, x]) => `${k}=${fmt(x)}`).join(" ")
        }`,
      );
    }
  }
  return samples;
}

/** A number with 3 significant digits, thousands separated. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return x.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** Throws unless `actual === expected`: a broken variant must not look fast. */
export function check(what: string, actual: number, expected: number): void {
  if (actual !== expected) {
    throw new Error(
      `Check failed: ${what}: expected ${expected}, got ${actual}`,
    );
  }
}

/** Polls `probe` until it returns true (every `everyMs`), or throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 120_000,
  everyMs = 5,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await probe())) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** How one metric is shown. */
export interface Metric {
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  /** Higher is better (throughput), else lower is better (time). */
  readonly higherIsBetter?: boolean;
  /** A figure that explains the others (CPU used): no ratio column, no chart. */
  readonly secondary?: boolean;
}

/** One measurement's report. */
export interface Report {
  readonly id: string;
  readonly title: string;
  /** What is measured, how, and what the peers are (markdown). */
  readonly description: string;
  readonly metrics: readonly Metric[];
  /** Groups of rows compared with each other, each with its baseline row. */
  readonly groups: readonly {
    readonly title: string;
    readonly baseline: string;
    readonly rows: readonly string[];
  }[];
  readonly samples: Samples;
  /** Extra lines under the table (checks made, notes). */
  readonly notes?: readonly string[];
}

/**
 * The ratio of a row to the baseline for one metric: the median of the
 * per-repeat ratios (both measured in the same repeat), so that slow drift
 * of the machine cancels out.
 */
export function ratio(
  samples: Samples,
  row: string,
  baseline: string,
  metric: string,
): number {
  const a = samples.get(row)?.[metric] ?? [];
  const b = samples.get(baseline)?.[metric] ?? [];
  const per = a.map((x, i) => x / b[i]!).filter(Number.isFinite);
  return median(per);
}

/** The markdown of a report. */
export function markdown(report: Report, header: string): string {
  const lines = [`# ${report.title}`, "", header, "", report.description, ""];
  for (const group of report.groups) {
    if (report.groups.length > 1 || group.title !== "") {
      lines.push(`## ${group.title}`, "");
    }
    const cols = ["variant"];
    for (const m of report.metrics) {
      cols.push(`${m.label} median (min–max), ${m.unit}`);
      if (!m.secondary) cols.push(`× ${group.baseline}`);
    }
    lines.push(`| ${cols.join(" | ")} |`);
    lines.push(
      `| ${cols.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    );
    for (const row of group.rows) {
      const cells = [row === group.baseline ? `**${row}**` : row];
      for (const m of report.metrics) {
        const values = report.samples.get(row)?.[m.key] ?? [];
        if (values.length === 0) {
          cells.push(...(m.secondary ? ["—"] : ["—", "—"]));
          continue;
        }
        const sorted = values.toSorted((a, b) => a - b);
        cells.push(
          `${fmt(median(values))} (${fmt(sorted[0]!)}–${fmt(sorted.at(-1)!)})`,
        );
        if (m.secondary) continue;
        cells.push(
          row === group.baseline
            ? "1.00×"
            : `${
              ratio(report.samples, row, group.baseline, m.key).toFixed(2)
            }×`,
        );
      }
      lines.push(`| ${cells.join(" | ")} |`);
    }
    lines.push("");
  }
  for (const note of report.notes ?? []) lines.push(`- ${note}`);
  if (report.notes?.length) lines.push("");
  lines.push(`![${report.title}](${report.id}.svg)`, "");
  return lines.join("\n");
}

const escape = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/**
 * A horizontal bar chart: one panel per metric, one bar per row (its
 * median), a line from min to max, the baseline of each group in grey.
 */
export function svg(report: Report): string {
  const rowH = 22;
  const longest = Math.max(
    ...report.groups.flatMap((g) => g.rows.map((r) => r.length)),
  );
  // About 6.2 px per character of 11 px sans-serif.
  const labelW = Math.max(200, Math.ceil(longest * 6.2) + 16);
  const plotW = 380;
  const width = labelW + plotW + 90;
  const parts: string[] = [];
  let y = 30;
  parts.push(
    `<text x="10" y="20" font-size="15" font-weight="bold">${
      escape(report.title)
    }</text>`,
  );
  for (const m of report.metrics) {
    if (m.secondary) continue;
    // A group whose rows all appeared in an earlier panel is not drawn again.
    const drawn = new Set<string>();
    for (const group of report.groups) {
      const rows = group.rows.filter((r) =>
        (report.samples.get(r)?.[m.key]?.length ?? 0) > 0
      );
      if (rows.length === 0 || rows.every((r) => drawn.has(r))) continue;
      for (const r of rows) drawn.add(r);
      const max = Math.max(
        ...rows.flatMap((r) => report.samples.get(r)![m.key]!),
      );
      const scale = (x: number) => (x / (max || 1)) * plotW;
      y += 12;
      parts.push(
        `<text x="10" y="${y}" font-size="12" font-weight="bold">${
          escape(
            `${group.title ? `${group.title}: ` : ""}${m.label} (${m.unit}, ${
              m.higherIsBetter ? "higher" : "lower"
            } is better)`,
          )
        }</text>`,
      );
      y += 6;
      for (const r of rows) {
        const values = report.samples.get(r)![m.key]!;
        const sorted = values.toSorted((a, b) => a - b);
        const mid = median(values);
        const own = r.startsWith("aftercommit");
        const fill = r === group.baseline
          ? "#9e9e9e"
          : own
          ? "#1f77b4"
          : "#ff7f0e";
        parts.push(
          `<text x="${labelW - 6}" y="${
            y + 15
          }" font-size="11" text-anchor="end">${escape(r)}</text>`,
          `<rect x="${labelW}" y="${y + 4}" width="${
            Math.max(1, scale(mid)).toFixed(1)
          }" height="${rowH - 8}" fill="${fill}"/>`,
          `<line x1="${labelW + scale(sorted[0]!)}" x2="${
            labelW + scale(sorted.at(-1)!)
          }" y1="${y + rowH / 2}" y2="${
            y + rowH / 2
          }" stroke="#000" stroke-width="1"/>`,
          `<text x="${labelW + scale(Math.max(mid, sorted.at(-1)!)) + 4}" y="${
            y + 15
          }" font-size="10">${escape(fmt(mid))}</text>`,
        );
        y += rowH;
      }
    }
  }
  y += 10;
  parts.push(
    `<text x="10" y="${y}" font-size="10" fill="#555">bars: median; lines: min–max; grey: baseline; blue: aftercommit; orange: peers</text>`,
  );
  y += 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${
    parts.join("\n")
  }\n</svg>\n`;
}

/** The machine and versions, for the report's header. */
export async function machine(): Promise<string> {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /model name\s*:\s*(.+)/.exec(info)?.[1]?.trim() ?? cpu;
  } catch { /* not Linux */ }
  const sql = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  let pg = "unknown";
  try {
    const [row] = await sql`show server_version`;
    pg = String(row?.server_version);
  } finally {
    await sql.end();
  }
  return `${navigator.hardwareConcurrency} cores, ${cpu}; Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); PostgreSQL ${pg} on the same machine`;
}

/** Clock ticks per second of /proc (USER_HZ, 100 on Linux). */
const TICKS = 100;

/**
 * The CPU time a process has used (user + system), in seconds, or NaN where
 * /proc cannot be read.
 */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name, which is in parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return NaN;
  }
}

/**
 * The CPU time used by the PostgreSQL server, in seconds: its processes and
 * the backends that have ended.
 */
export function postgresCpuSeconds(): number {
  let total = 0;
  try {
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
        const open = stat.indexOf("(");
        const close = stat.lastIndexOf(")");
        if (stat.slice(open + 1, close) !== "postgres") continue;
        const fields = stat.slice(close + 2).split(" ");
        // utime + stime, and cutime + cstime: the time of ended children
        // (backends) that the postmaster has reaped.
        total += (Number(fields[11]) + Number(fields[12]) +
          Number(fields[13]) + Number(fields[14])) / TICKS;
      } catch { /* the process ended */ }
    }
  } catch {
    return NaN;
  }
  return total;
}

/** The machine's busy and total CPU time so far (all cores), in seconds. */
export function machineCpuSeconds(): { busy: number; total: number } {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line
      .split(/\s+/).slice(1, 9).map(Number) as number[];
    const busy = user! + nice! + system! + irq! + softirq! + steal!;
    return { busy: busy / TICKS, total: (busy + idle! + iowait!) / TICKS };
  } catch {
    return { busy: NaN, total: NaN };
  }
}
