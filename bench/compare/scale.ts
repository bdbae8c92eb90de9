// (f) Scale out: 1, 2 and 4 worker processes on one jobs database, and 1, 2
// and 4 relay processes over one outbox, each a separate OS process
// (_child.ts). Every job and event must be handled exactly once.
import postgres from "postgres";
import { PgBossJobQueue } from "../../src/adapters/pg-boss/mod.ts";
import { migrateOutbox } from "../../src/adapters/postgres/mod.ts";
import {
  check,
  type Database,
  interleave,
  type Report,
  type RunConfig,
  type Variant,
  waitFor,
} from "./_lib.ts";
import { ITEMS_DDL } from "./_model.ts";

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

// Checks that every id was handled exactly once.
function exactlyOnce(what: string, handled: string[][], n: number): void {
  const all = handled.flat();
  check(`${what}: handled`, all.length, n);
  check(`${what}: distinct`, new Set(all).size, n);
}

/** (f) worker and relay processes: the curve, and nothing handled twice. */
export async function scaleBench(
  config: RunConfig,
  app: Database,
  jobsDb: Database,
  log: (line: string) => void,
): Promise<Report> {
  const n = config.quick ? 500 : 10_000;
  const counts = [1, 2, 4];
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
        const children = Array.from(
          { length: k },
          () => new Child(["worker", jobsDb.url, queue]),
        );
        try {
          await Promise.all(children.map((c) => c.expect("ready")));
          await jobs.enqueueMany(
            Array.from({ length: n }, (_, i) => ({ name: queue, data: { i } })),
          );
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
          exactlyOnce(
            `${k} workers`,
            await Promise.all(children.map((c) => c.stop())),
            n,
          );
          await jobsSql`delete from pgboss.job where name = ${queue}`;
          return { perSecond: n / seconds };
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
        const fill = new Child(["fill", app.url, String(n)]);
        await fill.expect("committed");
        await fill.kill();
        const children = Array.from(
          { length: k },
          () => new Child(["relay", app.url]),
        );
        try {
          await Promise.all(children.map((c) => c.expect("ready")));
          // Past the dead process's lease (0.5 s).
          await new Promise((r) => setTimeout(r, 600));
          const [pending] =
            await sql`select count(*)::int as n from aftercommit_outbox where done_at is null`;
          check(`${k} relays: pending before`, pending!.n, n);
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
          exactlyOnce(
            `${k} relays`,
            await Promise.all(children.map((c) => c.stop())),
            n,
          );
          return { perSecond: n / seconds };
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
      metrics: [{
        key: "perSecond",
        label: "throughput",
        unit: "per s",
        higherIsBetter: true,
      }],
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
        } jobs (and events) handled exactly once (checked by id across processes).`,
      ],
    };
  } finally {
    await jobs.stop();
    await jobsSql.end();
    await sql.end();
  }
}
