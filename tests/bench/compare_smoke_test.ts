// The side-by-side bench's smoke run (`deno task bench:compare --quick`):
// every measurement runs once on small sizes, its result checks (job and
// event counts, exactly-once across processes) pass, and it writes a table
// and a chart per measurement. Needs a PostgreSQL server: it runs with
// TEST_DATABASE_URL set (deno task test:server), where it creates and drops
// its own databases. Its figures are not asserted: timing belongs in benches.
import assert from "node:assert/strict";

const serverUrl = Deno.env.get("TEST_DATABASE_URL") || undefined;
const main = new URL("../../bench/compare/main.ts", import.meta.url).pathname;
// The bench's own packages (graphile-worker, the emitters) are in its config.
const config = new URL("../../bench/bench.json", import.meta.url).pathname;

Deno.test({
  name:
    "bench:compare --quick runs every measurement and writes its tables and charts",
  ignore: serverUrl === undefined,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "bench_compare_smoke_" });
    try {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--frozen",
          "--config",
          config,
          main,
          "--quick",
          `--out=${out}`,
        ],
        env: { BENCH_DATABASE_URL: serverUrl! },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(stdout) +
        new TextDecoder().decode(stderr);
      assert.equal(code, 0, text.slice(-3000));
      const peers: Record<string, string[]> = {
        a_unit_of_work: ["bare sql.begin", "hand-written outbox"],
        b_latency: ["graphile-worker add_job", "pg-boss insert"],
        c_enqueue: ["pg-boss insert", "graphile-worker addJobs"],
        d_throughput: ["graphile-worker, concurrency 4", "pg-boss, tuned"],
        e_publish: [
          "hand-written awaited loop",
          "emittery emitSerial",
          "mitt",
          "node:events",
          "eventemitter3",
        ],
        f_scale_out: ["relay processes: 4", "worker processes (defaults): 4"],
      };
      for (const [id, rows] of Object.entries(peers)) {
        const md = await Deno.readTextFile(`${out}/${id}.md`);
        for (const row of ["aftercommit", ...rows]) {
          // A row with a median: "| name |   12.3 (…–…) |" (deno fmt pads cells).
          assert.match(
            md,
            new RegExp(
              `\\| \\**[^|]*${
                row.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
              }[^|]*\\|\\s+[\\d,.]+ \\(`,
            ),
            `${id}: a row for ${row}`,
          );
        }
        const svg = await Deno.readTextFile(`${out}/${id}.svg`);
        assert.match(svg, /^<svg [^>]*>[\s\S]*<rect[\s\S]*<\/svg>\n$/);
      }
      assert.match(await Deno.readTextFile(`${out}/README.md`), /cores/);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
