// The CLI's database-URL rules: the flag, then the environment variable,
// must hold a postgres:// URL; none at all names both and the PGlite case.
// A case that reads the variables sets both (removing what `env` omits) and
// restores them after, so a DATABASE_URL or JOB_QUEUE_DATABASE_URL set for
// other suites does not count; a case with the flags leaves them alone.
import assert from "node:assert/strict";
import { type CliIo, main } from "../../src/cli/mod.ts";

const VARIABLES = ["DATABASE_URL", "JOB_QUEUE_DATABASE_URL"];

// Runs the CLI, with only `env` among the two variables if given; returns
// its exit code and what it wrote to stderr.
async function cli(
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; err: string }> {
  const saved = VARIABLES.map((name) => [name, Deno.env.get(name)] as const);
  let err = "";
  const io: CliIo = {
    out: (text) => assert.fail(`unexpected output: ${text}`),
    err: (text) => void (err += text),
    confirm: () => Promise.resolve(false),
  };
  if (env === undefined) return { code: await main(args, io), err };
  try {
    for (const name of VARIABLES) Deno.env.delete(name);
    for (const [name, value] of Object.entries(env)) Deno.env.set(name, value);
    return { code: await main(args, io), err };
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
}

const PGLITE =
  "(an embedded PGlite database can be opened by one process only; use the dev server's admin endpoints for it)";

Deno.test("CLI: no database URL at all: exit 2, naming the flag, the variable and why PGlite cannot be opened", async () => {
  assert.deepEqual(await cli(["stats"], {}), {
    code: 2,
    err:
      `aftercommit: Cannot open the database: pass --database-url or set DATABASE_URL ${PGLITE}\n`,
  });
  // The jobs database's URL is another: DATABASE_URL does not stand for it.
  assert.deepEqual(
    await cli(["dead-letters", "list"], {
      DATABASE_URL: "postgres://127.0.0.1:1/app",
    }),
    {
      code: 2,
      err:
        `aftercommit: Cannot open the database: pass --jobs-url or set JOB_QUEUE_DATABASE_URL ${PGLITE}\n`,
    },
  );
});

Deno.test("CLI: a database URL that is not postgres://: exit 2, naming where it came from but not the URL", async () => {
  const secret = "mysql://admin:s3cret@db.test/app";
  const cases: [string[], Record<string, string> | undefined, string][] = [
    [["stats", "--database-url", secret], undefined, "--database-url"],
    [["stats"], { DATABASE_URL: secret }, "DATABASE_URL"],
    // The flag wins over the variable, and is the one named.
    [
      ["stats", "--database-url", secret],
      { DATABASE_URL: "postgres://127.0.0.1:1/app" },
      "--database-url",
    ],
    [["dead-letters", "list", "--jobs-url", secret], undefined, "--jobs-url"],
    [
      ["dead-letters", "retry", "--all"],
      { JOB_QUEUE_DATABASE_URL: secret },
      "JOB_QUEUE_DATABASE_URL",
    ],
    [
      ["stats", "--database-url", "127.0.0.1:5432/app"],
      undefined,
      "--database-url",
    ],
  ];
  for (const [args, env, named] of cases) {
    const { code, err } = await cli(args, env);
    assert.equal(code, 2, args.join(" "));
    assert.equal(
      err,
      `aftercommit: Cannot open the database: ${named} must be a postgres:// URL\n`,
      args.join(" "),
    );
    assert.ok(!err.includes("s3cret"));
  }
});

Deno.test("CLI: a postgresql:// URL passes the rule (and then fails to connect: exit 1)", async () => {
  for (
    const url of ["postgresql://127.0.0.1:1/app", "postgres://127.0.0.1:1/app"]
  ) {
    const { code, err } = await cli(["stats", "--database-url", url]);
    assert.equal(code, 1, err);
    assert.doesNotMatch(err, /must be a postgres:\/\/ URL|pass --database-url/);
  }
});
