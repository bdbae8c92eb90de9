// The dev server warns at start-up when the dashboard is open to the network:
// HOST is not a loopback address and ADMIN_TOKEN is unset (README, "The admin
// token"). The decision is made inside startApp() (src/dev/app.ts), so the
// test starts the app in process (no HTTP listener) on the test databases:
// embedded PGlite in a temporary folder, or fresh server databases when
// TEST_DATABASE_URL is set.
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { readConfig } from "../../../src/dev/config.ts";
import { startApp } from "../../../src/dev/app.ts";
import { openDevDatabases } from "../../_helpers/dev_server.ts";

const WARNING =
  /^The dashboard at \/dashboard has no sign-in and the server listens on (.*): set ADMIN_TOKEN$/;

Deno.test("the dev app warns at start-up when HOST is not loopback and ADMIN_TOKEN is unset", async (t) => {
  await using dbs = await openDevDatabases();
  const savedToken = Deno.env.get("ADMIN_TOKEN");

  /** The dashboard warnings of one start with `host` and `token`. */
  async function warnings(
    host: string | undefined,
    token: string | undefined,
  ): Promise<string[]> {
    const records: LogRecord[] = [];
    await configure({
      reset: true,
      sinks: { capture: (record) => records.push(record) },
      loggers: [
        { category: ["dev"], lowestLevel: "warning", sinks: ["capture"] },
        { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
      ],
    });
    if (token === undefined) Deno.env.delete("ADMIN_TOKEN");
    else Deno.env.set("ADMIN_TOKEN", token);
    try {
      const config = readConfig([], {
        ...dbs.env,
        ...(host === undefined ? {} : { HOST: host }),
      });
      await using _app = await startApp(config);
    } finally {
      if (savedToken === undefined) Deno.env.delete("ADMIN_TOKEN");
      else Deno.env.set("ADMIN_TOKEN", savedToken);
      await reset();
    }
    return records.map((r) => r.message.join("")).filter((m) =>
      WARNING.test(m)
    );
  }

  await t.step(
    "HOST=0.0.0.0 without ADMIN_TOKEN: warns, naming the host",
    async () => {
      const found = await warnings("0.0.0.0", undefined);
      assert.equal(found.length, 1, found.join("\n"));
      assert.equal(WARNING.exec(found[0]!)?.[1], "0.0.0.0");
    },
  );
  await t.step("HOST=0.0.0.0 with ADMIN_TOKEN: no warning", async () => {
    assert.deepEqual(await warnings("0.0.0.0", "a-token"), []);
  });
  await t.step(
    "the default HOST (127.0.0.1) without ADMIN_TOKEN: no warning",
    async () => {
      assert.deepEqual(await warnings(undefined, undefined), []);
    },
  );
  await t.step(
    "HOST=localhost or ::1 without ADMIN_TOKEN: no warning",
    async () => {
      for (const host of ["localhost", "::1"]) {
        assert.deepEqual(await warnings(host, undefined), [], host);
      }
    },
  );
});
