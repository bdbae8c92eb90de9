// Start-up, end to end: what a newcomer meets when something is in the way.
// A second server on the same data folder, a port in use, a database
// server that is not there: each ends at once with one clear line and no
// stack trace; missing databases on a reachable server are created.
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  register,
  runDevServerToExit,
  startDevServer,
} from "../_helpers/dev_server.ts";

/** One line on stderr, naming the problem, no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /\n\s+at |Stack backtrace|error: Uncaught/);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test({
  name:
    "a second dev server on the same data folder exits at once with one line, before opening anything",
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-lock-" });
    try {
      await using first = await startDevServer({ DATA_DIR: dataDir });
      const second = await runDevServerToExit({
        DATA_DIR: dataDir,
        LOG_LEVEL: "debug",
      });
      assert.equal(second.code, 1);
      assertOneLine(
        second.stderr,
        /^Cannot start the dev server: another dev server \(process \d+\) is using the data folder .+: stop it, or set DATA_DIR to another folder$/,
      );
      // Nothing was opened: no embedded database started, no relay.
      assert.doesNotMatch(second.stdout, /embedded|relay|Listening/i);
      // The first one is unharmed.
      const res = await register(first, {
        email: `lock.${crypto.randomUUID().slice(0, 8)}@example.org`,
        name: "Lock",
      });
      assert.equal(res.status, 201);
      assert.equal(await first.stop("SIGTERM"), 0);
      // Once it is gone, the folder is free again (the OS released the lock).
      await using third = await startDevServer({ DATA_DIR: dataDir });
      assert.equal(await third.stop("SIGKILL"), 137);
      await using fourth = await startDevServer({ DATA_DIR: dataDir });
      assert.match(fourth.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a port in use ends the dev server at once with one line",
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-port-" });
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (listener.addr as Deno.NetAddr).port;
      const run = await runDevServerToExit({
        DATA_DIR: dataDir,
        PORT: String(port),
      });
      assert.equal(run.code, 1);
      assertOneLine(
        run.stderr,
        new RegExp(
          `^Cannot start the dev server: port ${port} on 127\\.0\\.0\\.1 is in use \\(another dev server\\?\\): stop it, or set PORT to another port$`,
        ),
      );
    } finally {
      listener.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "an unreachable database server gives one line with its URL (no password) and what to do",
  async fn(t) {
    const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-down-" });
    try {
      const port = freePort(); // nothing listens there
      for (
        const [variable, other] of [
          ["DATABASE_URL", "JOB_QUEUE_DATABASE_URL"],
          ["JOB_QUEUE_DATABASE_URL", "DATABASE_URL"],
        ] as const
      ) {
        await t.step(variable, async () => {
          const run = await runDevServerToExit({
            DATA_DIR: dataDir,
            [variable]: `postgres://ada:s3cret-pw@127.0.0.1:${port}/app`,
            [other]: "",
          });
          assert.equal(run.code, 1, run.stderr);
          assertOneLine(
            run.stderr,
            new RegExp(
              `^Cannot start the dev server: Cannot connect to postgres://127\\.0\\.0\\.1:${port}/app \\(${variable}\\): ECONNREFUSED\\. Start PostgreSQL there or fix ${variable}; unset it to use an embedded database instead$`,
            ),
          );
          assert.ok(!run.stderr.includes("s3cret"), "the password is shown");
          assert.ok(!run.stdout.includes("s3cret"), "the password is logged");
        });
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

const serverUrl = Deno.env.get("TEST_DATABASE_URL") || undefined;

Deno.test({
  name:
    "on one PostgreSQL server, the dev server creates its missing app and jobs databases",
  ignore: serverUrl === undefined,
  async fn() {
    const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
    const names = [
      `aftercommit_new_app_${suffix}`,
      `aftercommit_new_jobs_${suffix}`,
    ];
    const url = (name: string) => {
      const u = new URL(serverUrl!);
      u.pathname = `/${name}`;
      return u.href;
    };
    const admin = postgres(serverUrl!, { max: 1, onnotice: () => {} });
    const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-new-" });
    try {
      const exists = async () =>
        (await admin`select datname from pg_database where datname in ${
          admin(names)
        } order by datname`).map((r) => r.datname);
      assert.deepEqual(await exists(), []);
      for (const round of ["created", "reused"]) {
        await using server = await startDevServer({
          DATA_DIR: dataDir,
          DATABASE_URL: url(names[0]!),
          JOB_QUEUE_DATABASE_URL: url(names[1]!),
        });
        const res = await register(server, {
          email: `one.${round}.${suffix}@example.org`,
          name: "One Server",
        });
        assert.equal(res.status, 201, JSON.stringify(res.body));
        const created = server.output().match(/Created database \S+/g) ?? [];
        assert.deepEqual(
          created.sort(),
          round === "created"
            ? names.map((n) => `Created database ${n}`).sort()
            : [],
        );
        assert.equal(await server.stop("SIGTERM"), 0);
      }
      assert.deepEqual(await exists(), [...names].sort());
    } finally {
      for (const name of names) {
        await admin`drop database if exists ${admin(name)} with (force)`;
      }
      await admin.end();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
