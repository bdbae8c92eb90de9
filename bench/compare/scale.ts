// (f) Scale out: 1, 2 and 4 worker processes on one jobs database, and 1, 2
// and 4 relay processes over one outbox, each a separate OS process
// (_child.ts). Every job and event must be handled exactly once.
import postgres from "postgres";
import { PgBossJobQueue } from "../../src/adapters/pg-boss/mod.ts";
import { migrateOutbox } from "../../src/adapters/postgres/mod.ts";
import {
  check,
  type Database,
  fmt,
  interleave,
  machineCpuSeconds,
  median,
  postgresCpuSeconds,
  processCpuSeconds,
  ratio,
  type Report,
  type RunConfig,
  type Variant,
  waitFor,
} from "./_lib.ts";
import { ITEMS_DDL } from "./_model.ts";

const COUNTS = [1, 2, 4] as const;
const CHILD = new URL("./_child.ts", import.meta.url).pathname;

class Child {
  readonly #process: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncGenerator<string>;

  constructor(args: string[]) {
    this.#process = new Deno.Command(Deno.execPath(), {
      // node_modules as it is: processes starting together must not each
      // try to bring it up to date.
      args: [
        "run",
        "--allow-all",
        "--no-check",
        "--frozen",
        "--node-modules-dir=manual",
        CHILD,
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#process.stdin.getWriter();
    this.#lines = (async function* (stdout: ReadableStream<Uint8Array>) {
      let buffer = "";
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let i;
        while ((i = buffer.indexOf("\n")) >= 0) {
          yield buffer.slice(0, i);
          buffer = buffer.slice(i + 1);
        }
      }
    })(this.#process.stdout);
  }

  get pid(): number {
    return this.#process.pid;
  }

  async expect(word: string): Promise<void> {
    const { value } = await this.#lines.next();
    if (value !== word) {
      throw new Error(`Child said ${value}, expected ${word}`);
    }
  }

  async send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Sends "stop" and returns the ids the child handled. */
  async stop(): Promise<string[]> {
    await this.send("stop");
    const { value } = await this.#lines.next();
    await this.#writer.close().catch(() => {});
    await this.#process.status;
    return JSON.parse(value ?? "null") as string[];
  }

  async kill(): Promise<void> {
    try {
      this.#process.kill("SIGKILL");
    } catch { /* already exited */ }
    await this.#writer.close().catch(() => {});
    for await (const _ of this.#lines) { /* drain */ }
    await this.#process.status;
  }
}

// Starts k children and waits until each says `word`. A start that fails
// (a process that exits while Deno loads its modules, as when another
// process rewrites node_modules) is logged and tried once more: it happens
// before any clock runs.
async function startChildren(
  k: number,
  args: string[],
  word: string,
  log: (line: string) => void,
): Promise<Child[]> {
  for (let attempt = 1;; attempt++) {
    const children = Array.from({ length: k }, () => new Child(args));
    try {
      await Promise.all(children.map((c) => c.expect(word)));
      return children;
    } catch (error) {
      await Promise.all(children.map((c) => c.kill()));
      if (attempt === 2) throw error;
      log(`  starting ${args[0]} processes failed (${error}); once more`);
    }
  }
}

// Checks that the processes handled every id the database holds, each once.
function exactlyOnce(
  what: string,
  handled: string[][],
  inDatabase: readonly string[],
): void {
  const all = handled.flat();
  const expected = new Set(inDatabase);
  check(`${what}: handled`, all.length, expected.size);
  const seen = new Set(all);
  check(`${what}: distinct`, seen.size, expected.size);
  check(
    `${what}: handled ids that are in the database`,
    [...seen].filter((id) => expected.has(id)).length,
    expected.size,
  );
}

// CPU used during a sample: the whole machine, the child processes, the
// PostgreSQL server.
function cpuMeter(children: readonly Child[]) {
  const m0 = machineCpuSeconds();
  const c0 = children.reduce((s, c) => s + processCpuSeconds(c.pid), 0);
  const p0 = postgresCpuSeconds();
  return (n: number) => {
    const m1 = machineCpuSeconds();
    const c1 = children.reduce((s, c) => s + processCpuSeconds(c.pid), 0);
    const p1 = postgresCpuSeconds();
    return {
      busy: (100 * (m1.busy - m0.busy)) / (m1.total - m0.total),
      childMsPer1k: ((c1 - c0) * 1e6) / n,
      serverMsPer1k: ((p1 - p0) * 1e6) / n,
    };
  };
}

/** (f) worker and relay processes: the curve, and nothing handled twice. */
export async function scaleBench(
  config: RunConfig,
  app: Database,
  jobsDb: Database,
  log: (line: string) => void,
): Promise<Report> {
  const n = config.quick ? 500 : 10_000;
  const counts = COUNTS;
  const jobs = await PgBossJobQueue.connect(jobsDb.url);
  const jobsSql = postgres(jobsDb.url, { max: 2, onnotice: () => {} });
  const sql = postgres(app.url, { max: 2, onnotice: () => {} });
  await sql.unsafe(ITEMS_DDL);
  await migrateOutbox(sql);
  let sampleNo = 0;
  try {
    const workerVariant = (k: number): Variant => ({
      name: `aftercommit worker processes (defaults): ${k}`,
      async sample() {
        const queue = `scale-${sampleNo++}`;
        const children = await startChildren(
          k,
          ["worker", jobsDb.url, queue],
          "ready",
          log,
        );
        try {
          await jobs.enqueueMany(
            Array.from({ length: n }, (_, i) => ({ name: queue, data: { i } })),
          );
          const cpu = cpuMeter(children);
          const t0 = performance.now();
          await waitFor(
            `${queue} completed`,
            async () => {
              const [row] =
                await jobsSql`select count(*)::int as n from pgboss.job
              where name = ${queue} and state = 'completed'`;
              return row!.n === n;
            },
            300_000,
            5,
          );
          const seconds = (performance.now() - t0) / 1000;
          const used = cpu(n);
          // A job started twice (its first attempt expired or failed) has
          // retry_count > 0.
          const rows = await jobsSql<{ id: string; retry_count: number }[]>`
            select id, retry_count from pgboss.job where name = ${queue}`;
          check(
            `${k} workers: jobs started more than once (retry_count > 0)`,
            rows.filter((r) => r.retry_count > 0).length,
            0,
          );
          exactlyOnce(
            `${k} workers`,
            await Promise.all(children.map((c) => c.stop())),
            rows.map((r) => r.id),
          );
          check(`${k} workers: jobs in the database`, rows.length, n);
          await jobsSql`delete from pgboss.job where name = ${queue}`;
          return { perSecond: n / seconds, ...used };
        } catch (error) {
          await Promise.all(children.map((c) => c.kill()));
          throw error;
        }
      },
    });
    const relayVariant = (k: number): Variant => ({
      name: `aftercommit relay processes: ${k}`,
      async sample() {
        await sql`delete from aftercommit_outbox`;
        // n events committed by a process that dies before dispatching them.
        const [fill] = await startChildren(
          1,
          ["fill", app.url, String(n)],
          "committed",
          log,
        );
        await fill!.kill();
        const children = await startChildren(
          k,
          ["relay", app.url],
          "ready",
          log,
        );
        try {
          // Past the dead process's lease (0.5 s).
          await new Promise((r) => setTimeout(r, 600));
          const [pending] =
            await sql`select count(*)::int as n from aftercommit_outbox where done_at is null`;
          check(`${k} relays: pending before`, pending!.n, n);
          const cpu = cpuMeter(children);
          const t0 = performance.now();
          await Promise.all(children.map((c) => c.send("go")));
          await waitFor(
            `${k} relays: outbox drained`,
            async () => {
              const [row] =
                await sql`select count(*)::int as n from aftercommit_outbox where done_at is null`;
              return row!.n === 0;
            },
            300_000,
            5,
          );
          const seconds = (performance.now() - t0) / 1000;
          const used = cpu(n);
          const rows = await sql<{ id: string }[]>`
            select id from aftercommit_outbox where done_at is not null`;
          check(`${k} relays: events done in the database`, rows.length, n);
          exactlyOnce(
            `${k} relays`,
            await Promise.all(children.map((c) => c.stop())),
            rows.map((r) => r.id),
          );
          return { perSecond: n / seconds, ...used };
        } catch (error) {
          await Promise.all(children.map((c) => c.kill()));
          throw error;
        }
      },
    });
    const workers = counts.map(workerVariant);
    const relays = counts.map(relayVariant);
    const samples = await interleave([...workers, ...relays], config, log);
    return {
      id: "f_scale_out",
      title: "(f) Scale out: worker and relay processes",
      description:
        `Workers: k worker-only processes (separate \`deno run\` processes, \`PgBossJobQueue.work\` with default options, no-op handler) on one jobs database; the web process (this one) enqueues ${
          n.toLocaleString("en-US")
        } jobs with one \`enqueueMany\`; the clock runs from its commit until the database shows every job completed. Relays: ${
          n.toLocaleString("en-US")
        } outbox events committed by a process that is killed before dispatching them; k relay-only processes (\`OutboxRelay\` with default options, a no-op handler) start together; the clock runs until no event is undone. Each process reports the ids it handled; every sample checks that each job and event was handled exactly once. The machine has ${navigator.hardwareConcurrency} cores, shared by the server and every process.`,
      metrics: [
        {
          key: "perSecond",
          label: "throughput",
          unit: "per s",
          higherIsBetter: true,
        },
        { key: "busy", label: "machine CPU busy", unit: "%", secondary: true },
        {
          key: "childMsPer1k",
          label: "CPU of the processes",
          unit: "ms per 1,000",
          secondary: true,
        },
        {
          key: "serverMsPer1k",
          label: "CPU of PostgreSQL",
          unit: "ms per 1,000",
          secondary: true,
        },
      ],
      groups: [
        {
          title: "worker processes",
          baseline: workers[0]!.name,
          rows: workers.map((v) => v.name),
        },
        {
          title: "relay processes",
          baseline: relays[0]!.name,
          rows: relays.map((v) => v.name),
        },
      ],
      samples,
      notes: [
        `Every sample: each of the ${
          n.toLocaleString("en-US")
        } jobs (and events) handled exactly once: the ids the processes report are checked against the ids in the database (every one handled, none twice, none unknown), and no pg-boss job has \`retry_count\` > 0 (a job whose first attempt expired or failed and was started again).`,
        flattening("worker processes", workers, samples),
        flattening("relay processes", relays, samples),
        `CPU: the machine's busy share over the sample (/proc/stat: every process, other load included), the CPU time of the worker or relay processes, and of PostgreSQL (its processes and the backends that ended: /proc/<pid>/stat), per 1,000 jobs or events; all in CPU-milliseconds, the machine has ${navigator.hardwareConcurrency} cores.`,
      ],
    };
  } finally {
    await jobs.stop();
    await jobsSql.end();
    await sql.end();
  }
}

// Where the curve flattens: the first count whose throughput (median of the
// per-repeat ratios to one process) gains less than 10% over the previous
// count.
function flattening(
  what: string,
  variants: readonly Variant[],
  samples: Map<string, Record<string, number[]>>,
): string {
  const one = variants[0]!.name;
  const ratios = variants.map((v) =>
    v.name === one ? 1 : ratio(samples, v.name, one, "perSecond")
  );
  const steps = variants.map((v, i) =>
    `${COUNTS[i]}: ${fmt(median(samples.get(v.name)?.perSecond ?? []))}/s (${
      ratios[i]!.toFixed(2)
    }×, machine CPU ${
      Math.round(median(samples.get(v.name)?.busy ?? []))
    }% busy)`
  );
  const flat = ratios.findIndex((r, i) => i > 0 && r < ratios[i - 1]! * 1.1);
  return `${what[0]!.toUpperCase()}${what.slice(1)}, medians: ${
    steps.join("; ")
  }. ${
    flat < 0
      ? `It does not flatten up to ${COUNTS.at(-1)}.`
      : `It flattens at ${COUNTS[flat]} (less than 10% over ${
        COUNTS[flat - 1]
      }).`
  }`;
}
