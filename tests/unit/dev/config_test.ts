import assert from "node:assert/strict";
import { describeUrl, readConfig } from "../../../src/dev/config.ts";

Deno.test("describeUrl() names host, port and database, never the user or password", () => {
  const text = describeUrl(
    "postgresql://app_user:s3cret-Pa55@db.internal:5433/jobs",
  );
  assert.equal(text, "postgresql://db.internal:5433/jobs");
  assert.ok(!text.includes("s3cret"));
  assert.ok(!text.includes("app_user"));
  assert.equal(describeUrl("not a url"), "(an unparsable URL)");
});

Deno.test("readConfig() has working defaults: embedded databases on 127.0.0.1:8000", () => {
  const config = readConfig([], {});
  assert.deepEqual(config, {
    port: 8000,
    hostname: "127.0.0.1",
    databaseUrl: undefined,
    jobQueueDatabaseUrl: undefined,
    dataDir: ".data",
    fresh: false,
    logFormat: "text",
    logLevel: "info",
    outbox: true,
    outboxMaxAttempts: 10,
    mailerDelayMs: 0,
    bodyTimeoutMs: 10_000,
  });
});

Deno.test("readConfig() reads the environment and --fresh", () => {
  const config = readConfig(["--fresh"], {
    PORT: "0",
    HOST: "0.0.0.0",
    DATABASE_URL: "postgres://a/app",
    JOB_QUEUE_DATABASE_URL: "postgres://b/jobs",
    BODY_TIMEOUT_MS: "500",
    DATA_DIR: "/tmp/x",
    LOG_FORMAT: "json",
    LOG_LEVEL: "debug",
    OUTBOX: "off",
    MAILER_DELAY_MS: "250",
  });
  assert.equal(config.port, 0);
  assert.equal(config.hostname, "0.0.0.0");
  assert.equal(config.databaseUrl, "postgres://a/app");
  assert.equal(config.jobQueueDatabaseUrl, "postgres://b/jobs");
  assert.equal(config.fresh, true);
  assert.equal(config.logFormat, "json");
  assert.equal(config.logLevel, "debug");
  assert.equal(config.outbox, false);
  assert.equal(config.mailerDelayMs, 250);
  assert.equal(config.bodyTimeoutMs, 500);
  assert.equal(readConfig([], { FRESH: "1" }).fresh, true);
  // Empty means unset, as docker compose and shells write it.
  assert.equal(readConfig([], { DATABASE_URL: "" }).databaseUrl, undefined);
});

Deno.test("readConfig() rejects bad values with the rule they broke", () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      [],
      { PORT: "80.5" },
      /PORT must be an integer from 0 to 65535, received "80.5"/,
    ],
    [[], { PORT: "70000" }, /PORT must be an integer from 0 to 65535/],
    [[], { LOG_FORMAT: "yaml" }, /LOG_FORMAT must be "text" or "json"/],
    [
      [],
      { LOG_LEVEL: "loud" },
      /LOG_LEVEL must be one of trace, debug, info, warning, error, fatal/,
    ],
    [[], { OUTBOX: "maybe" }, /OUTBOX must be true or false/],
    [[], { MAILER_DELAY_MS: "-1" }, /MAILER_DELAY_MS must be an integer/],
    [["--reset"], {}, /Unknown argument "--reset": the only flag is --fresh/],
    [[], { BODY_TIMEOUT_MS: "soon" }, /BODY_TIMEOUT_MS must be an integer/],
    [
      [],
      { DATABASE_URL: "mysql://root:pw@db/app" },
      /DATABASE_URL must be a URL such as postgres:\/\/postgres@127\.0\.0\.1:5432\/app \(with a database name\), received mysql:\/\/db\/app; unset it/,
    ],
    [
      [],
      { JOB_QUEUE_DATABASE_URL: "postgres://127.0.0.1:5432" },
      /JOB_QUEUE_DATABASE_URL must be a URL .* \(with a database name\)/,
    ],
    [[], { DATABASE_URL: "app" }, /received text that is not a URL/],
  ];
  for (const [args, env, message] of cases) {
    assert.throws(() => readConfig(args, env), message);
  }
});
