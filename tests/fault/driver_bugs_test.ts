// The upstream postgres.js bugs, reproduced in child processes: on the npm
// release (3.4.9) they show; on the project's path (the Unit of Work's
// reserved connection, and the patched copy in vendor/postgres) they do not.
import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { startCluster } from "../_helpers/cluster.ts";

const child = fromFileUrl(new URL("./_driver_child.ts", import.meta.url));

// The project's import map with postgres from the npm registry, unpatched
// (and no links), written next to the child so its imports resolve alike.
async function unpatchedConfig(): Promise<string> {
  const project = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const path = fromFileUrl(
    new URL("./_unpatched.deno.json", import.meta.url),
  );
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      imports: { ...project.imports, postgres: "npm:postgres@3.4.9" },
    }),
  );
  return path;
}

interface ChildResult {
  code: number;
  stderr: string;
  result?: {
    outcome: string;
    settled?: boolean;
    insideOtherTransaction?: number | null;
    unhandled: string[];
  };
}

async function runChild(
  scenario: string,
  url: string,
  driver: "patched" | "npm",
): Promise<ChildResult> {
  const args = driver === "npm"
    ? [
      "run",
      "-A",
      "--no-lock",
      "--config",
      await unpatchedConfig(),
      child,
      scenario,
      url,
    ]
    : ["run", "-A", "--frozen", child, scenario, url];
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const line = stdout.split("\n").at(-1);
  return {
    code: out.code,
    stderr: new TextDecoder().decode(out.stderr),
    result: line?.startsWith("{") ? JSON.parse(line) : undefined,
  };
}

Deno.test("postgres.js bugs: shown on the npm release, absent on the project's path", async (t) => {
  await using cluster = await startCluster();

  await t.step(
    "#1189 npm release: sql.begin() with BEGIN as the 100th queued query fails",
    async () => {
      const { result, stderr } = await runChild(
        "boundary-begin",
        cluster.url,
        "npm",
      );
      assert.ok(result, stderr);
      assert.notEqual(result.outcome, "resolved");
    },
  );
  await t.step(
    "#1189 npm release, Unit of Work: the same queue depth commits, and no other query runs inside its transaction",
    async () => {
      const { result, stderr } = await runChild(
        "boundary-uow",
        cluster.url,
        "npm",
      );
      assert.ok(result, stderr);
      assert.equal(result.outcome, "resolved");
      assert.equal(result.settled, true);
      assert.equal(result.insideOtherTransaction, 0);
      assert.deepEqual(result.unhandled, []);
    },
  );
  await t.step(
    "#1189 patched driver: sql.begin() itself is reserved at the boundary",
    async () => {
      const { result, stderr } = await runChild(
        "boundary-begin",
        cluster.url,
        "patched",
      );
      assert.ok(result, stderr);
      assert.equal(result.outcome, "resolved");
      assert.equal(result.insideOtherTransaction, 0);
      assert.deepEqual(result.unhandled, []);
    },
  );
  await t.step(
    "#1154 npm release: a query on a reserved connection whose backend died kills the process",
    async () => {
      const { code, stderr, result } = await runChild(
        "reserved-backend-dies",
        cluster.url,
        "npm",
      );
      assert.notEqual(code, 0);
      assert.equal(result, undefined);
      assert.match(stderr, /reading 'write'/);
    },
  );
  await t.step(
    "#1154 patched driver: the query rejects with CONNECTION_CLOSED and the process lives",
    async () => {
      const { code, stderr, result } = await runChild(
        "reserved-backend-dies",
        cluster.url,
        "patched",
      );
      assert.equal(code, 0, stderr);
      assert.equal(result?.outcome, "rejected CONNECTION_CLOSED");
      assert.deepEqual(result?.unhandled, []);
    },
  );
});
