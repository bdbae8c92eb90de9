// End to end: the real dev server as a subprocess, over HTTP, on embedded
// PGlite by default or on PostgreSQL with TEST_DATABASE_URL and
// TEST_JOB_QUEUE_DATABASE_URL set.
import assert from "node:assert/strict";
import {
  openDevDatabases,
  register,
  request,
  startDevServer,
  waitForWelcomeEmail,
} from "../_helpers/dev_server.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function email(tag: string): string {
  return `${tag}.${crypto.randomUUID().slice(0, 8)}@example.org`;
}

Deno.test({
  name:
    "the dev server registers a user, and the welcome email job marks it sent",
  async fn(t) {
    await using dbs = await openDevDatabases();
    await using server = await startDevServer(dbs.env);
    const address = email("ada");
    const name = "Ada Lovelace-Secret";

    let id = "";
    await t.step("POST /users answers 201 with the user", async () => {
      const res = await register(server, { email: address, name });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.match(res.contentType ?? "", /application\/json/);
      id = String(res.body.id);
      assert.match(id, UUID);
      assert.equal(res.body.email, address);
      assert.equal(res.body.name, name);
      assert.equal(typeof res.body.registeredAt, "string");
      assert.equal(res.body.welcomeEmailSentAt, null);
    });

    await t.step(
      "GET /users/:id shows the welcome email once the job ran",
      async () => {
        const user = await waitForWelcomeEmail(server, id);
        assert.equal(user.status, 200);
        assert.equal(user.body.id, id);
        assert.ok(
          Date.parse(String(user.body.welcomeEmailSentAt)) >=
            Date.parse(String(user.body.registeredAt)),
        );
      },
    );

    await t.step(
      "the audit trail and the mailbox hold one row each",
      async () => {
        if (dbs.appSql === undefined) return; // embedded: one connection, held by the server
        const [audit] = await dbs
          .appSql`select count(*)::int as n from audit_trail where user_id = ${id}`;
        const [mail] = await dbs
          .appSql`select count(*)::int as n from dev_mailbox where user_id = ${id}`;
        assert.equal(audit?.n, 1);
        assert.equal(mail?.n, 1);
      },
    );

    await t.step(
      "GET /health answers 200 when both databases answer",
      async () => {
        const res = await request(`${server.url}/health`);
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, {
          status: "ok",
          databases: { app: "ok", jobs: "ok" },
        });
      },
    );

    await t.step(
      "the log names requests and jobs, never an email or a name",
      () => {
        const out = server.output();
        assert.match(out, /POST \/users 201/);
        assert.match(out, /Sent welcome email for job/);
        assert.ok(!out.includes(address), "the log contains the email");
        assert.ok(!out.includes("Lovelace"), "the log contains the name");
        assert.ok(!out.includes("Secret"), "the log contains the name");
      },
    );
  },
});

Deno.test({
  name:
    "the dev server registers an email once, case-insensitively, even concurrently",
  async fn(t) {
    await using dbs = await openDevDatabases();
    await using server = await startDevServer(dbs.env);

    await t.step(
      "a second registration of the same email answers 409",
      async () => {
        const address = email("grace");
        const first = await register(server, { email: address, name: "Grace" });
        assert.equal(first.status, 201);
        const again = await register(server, {
          email: address.toUpperCase(),
          name: "Grace",
        });
        assert.equal(again.status, 409);
        assert.deepEqual(again.body, {
          error: "email is already registered",
          field: "email",
        });
      },
    );

    await t.step(
      "ten concurrent registrations of one email: exactly one 201",
      async () => {
        const address = email("linus");
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            register(server, {
              email: i % 2 === 0 ? address : address.toUpperCase(),
              name: `Linus ${i}`,
            })),
        );
        const statuses = results.map((r) => r.status).sort();
        assert.deepEqual(statuses, [
          201,
          409,
          409,
          409,
          409,
          409,
          409,
          409,
          409,
          409,
        ]);
      },
    );
  },
});

Deno.test({
  name:
    "the dev server answers bad requests with a 4xx and a JSON error, never a 500",
  async fn(t) {
    await using dbs = await openDevDatabases();
    await using server = await startDevServer(dbs.env);
    const valid = { email: email("bad"), name: "Bad Input" };
    const post = (body: string) =>
      request(`${server.url}/users`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });

    const cases: [
      string,
      () => Promise<{ status: number; body: Record<string, unknown> }>,
      number,
      string?,
    ][] = [
      ["a body that is not JSON", () => post("{not json"), 400],
      ["an empty body", () => post(""), 400],
      ["a JSON array", () => post("[]"), 400],
      ["JSON null", () => post("null"), 400],
      ["a JSON string", () => post('"ada@example.org"'), 400],
      [
        "a missing email",
        () => register(server, { name: "Ada" }),
        422,
        "email",
      ],
      [
        "an email that is not a string",
        () => register(server, { ...valid, email: 42 }),
        422,
        "email",
      ],
      [
        "an invalid email",
        () => register(server, { ...valid, email: "not-an-email" }),
        422,
        "email",
      ],
      [
        "an email with no domain dot",
        () => register(server, { ...valid, email: "ada@localhost" }),
        422,
        "email",
      ],
      [
        "an over-long email",
        () =>
          register(server, {
            ...valid,
            email: `${"a".repeat(250)}@example.org`,
          }),
        422,
        "email",
      ],
      [
        "a missing name",
        () => register(server, { email: valid.email }),
        422,
        "name",
      ],
      [
        "an empty name",
        () => register(server, { ...valid, name: "" }),
        422,
        "name",
      ],
      [
        "a blank name",
        () => register(server, { ...valid, name: "   " }),
        422,
        "name",
      ],
      [
        "a name that is not a string",
        () => register(server, { ...valid, name: ["Ada"] }),
        422,
        "name",
      ],
      [
        "an over-long name",
        () => register(server, { ...valid, name: "n".repeat(101) }),
        422,
        "name",
      ],
      [
        "an id that is not a UUID",
        () => request(`${server.url}/users/42`),
        400,
      ],
      [
        "an id with SQL in it",
        () => request(`${server.url}/users/1'%20or%20'1'='1`),
        400,
      ],
      [
        "an unknown user",
        () => request(`${server.url}/users/${crypto.randomUUID()}`),
        404,
      ],
      ["an unknown route", () => request(`${server.url}/nope`), 404],
      ["a wrong method on /users", () => request(`${server.url}/users`), 405],
      [
        "a wrong method on /users/:id",
        () =>
          request(`${server.url}/users/${crypto.randomUUID()}`, {
            method: "DELETE",
          }),
        405,
      ],
      [
        "a body over 16 KiB",
        () => post(JSON.stringify({ ...valid, name: "x".repeat(20_000) })),
        413,
      ],
      [
        "a NUL in the name",
        () => register(server, { ...valid, name: "Ada\u0000Lovelace" }),
        422,
        "name",
      ],
      [
        "a NUL in the email",
        () => register(server, { ...valid, email: "ada\u0000@example.org" }),
        422,
        "email",
      ],
      [
        "a lone surrogate in the name",
        () => register(server, { ...valid, name: "Ada \ud800" }),
        422,
        "name",
      ],
      [
        "a lone surrogate in the email",
        () => register(server, { ...valid, email: "ada\udfff@example.org" }),
        422,
        "email",
      ],
      [
        "a bell character in the name",
        () => register(server, { ...valid, name: "Ada\u0007" }),
        422,
        "name",
      ],
      [
        "a line break in the name",
        () => register(server, { ...valid, name: "Ada\nLovelace" }),
        422,
        "name",
      ],
      [
        "a C1 control in the name",
        () => register(server, { ...valid, name: "Ada\u0085" }),
        422,
        "name",
      ],
      [
        "a right-to-left override in the name",
        () => register(server, { ...valid, name: "Ada\u202Eecalevol" }),
        422,
        "name",
      ],
      [
        "a line separator in the email",
        () => register(server, { ...valid, email: "ada\u2028@example.org" }),
        422,
        "email",
      ],
      [
        "an email with a space",
        () => register(server, { ...valid, email: "ada lovelace@example.org" }),
        422,
        "email",
      ],
      [
        "an email with two @",
        () => register(server, { ...valid, email: "ada@@example.org" }),
        422,
        "email",
      ],
      [
        "an email with a non-ASCII domain",
        () => register(server, { ...valid, email: "ada@exämple.org" }),
        422,
        "email",
      ],
      [
        "an email whose domain label starts with a hyphen",
        () => register(server, { ...valid, email: "ada@-example.org" }),
        422,
        "email",
      ],
      [
        "an email with an IP address for a domain",
        () => register(server, { ...valid, email: "ada@127.0.0.1" }),
        422,
        "email",
      ],
      [
        "an email with a 65-character local part",
        () =>
          register(server, {
            ...valid,
            email: `${"a".repeat(65)}@example.org`,
          }),
        422,
        "email",
      ],
      [
        "a body that is not UTF-8",
        () =>
          request(`${server.url}/users`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
          }),
        400,
      ],
      [
        "a form-urlencoded body",
        () =>
          request(`${server.url}/users`, {
            method: "POST",
            body: new URLSearchParams(valid),
          }),
        415,
      ],
      [
        "a multipart body",
        () => {
          const form = new FormData();
          form.set("email", valid.email);
          form.set("name", valid.name);
          return request(`${server.url}/users`, { method: "POST", body: form });
        },
        415,
      ],
      [
        "a text/plain body",
        () =>
          request(`${server.url}/users`, {
            method: "POST",
            body: JSON.stringify(valid),
          }),
        415,
      ],
      [
        "JSON in another charset",
        () =>
          request(`${server.url}/users`, {
            method: "POST",
            headers: { "content-type": "application/json; charset=iso-8859-1" },
            body: JSON.stringify(valid),
          }),
        415,
      ],
      [
        "a content coding the server does not decode",
        () =>
          request(`${server.url}/users`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "content-encoding": "gzip",
            },
            body: JSON.stringify(valid),
          }),
        415,
      ],
      [
        "a NUL in the user id",
        () => request(`${server.url}/users/%00`),
        400,
      ],
      [
        "a wrong method on /health",
        () => request(`${server.url}/health`, { method: "POST" }),
        405,
      ],
    ];
    for (const [what, send, status, field] of cases) {
      await t.step(`${what} → ${status}`, async () => {
        const res = await send();
        assert.equal(res.status, status, JSON.stringify(res.body));
        assert.equal(typeof res.body.error, "string");
        assert.ok(
          !String(res.body.error).includes("    at "),
          "no stack trace",
        );
        if (field !== undefined) assert.equal(res.body.field, field);
      });
    }
    await t.step("a name of exactly 100 characters is accepted", async () => {
      const res = await register(server, {
        email: email("max"),
        name: "n".repeat(100),
      });
      assert.equal(res.status, 201);
    });
    await t.step(
      "a name is stored NFC-normalised and trimmed; a vendor +json type is accepted",
      async () => {
        const res = await request(`${server.url}/users`, {
          method: "POST",
          headers: {
            "content-type": "application/vnd.api+json; charset=UTF-8",
          },
          body: JSON.stringify({
            email: ` ${email("nfc")} `,
            name: "  Zoe\u0301 Cafe\u0301 ",
          }),
        });
        assert.equal(res.status, 201, JSON.stringify(res.body));
        assert.equal(res.body.name, "Zo\u00e9 Caf\u00e9");
        assert.doesNotMatch(String(res.body.email), /^\s|\s$/);
      },
    );
    await t.step(
      "a request with no content type is read as JSON",
      async () => {
        const res = await fetch(`${server.url}/users`, {
          method: "POST",
          body: new Blob([JSON.stringify({ ...valid, email: email("ct") })]),
        });
        await res.body?.cancel();
        assert.equal(res.status, 201);
      },
    );
    await t.step("HEAD answers where GET does, with no body", async () => {
      const created = await register(server, { ...valid, email: email("hd") });
      for (
        const path of ["/health", "/stats", `/users/${created.body.id}`]
      ) {
        // /stats may change between requests (outbox rows are marked done
        // within 20 ms of their run): HEAD is compared with a GET on each
        // side that agree.
        for (let attempt = 1;; attempt++) {
          const get = await fetch(`${server.url}${path}`);
          const getBody = await get.text();
          const head = await fetch(`${server.url}${path}`, { method: "HEAD" });
          const again = await (await fetch(`${server.url}${path}`)).text();
          assert.equal(head.status, get.status, path);
          assert.equal(await head.text(), "", path);
          if (again !== getBody && attempt < 10) continue;
          assert.equal(
            head.headers.get("content-length"),
            String(new TextEncoder().encode(getBody).length),
            path,
          );
          break;
        }
      }
      const missing = await fetch(
        `${server.url}/users/${crypto.randomUUID()}`,
        { method: "HEAD" },
      );
      await missing.body?.cancel();
      assert.equal(missing.status, 404);
      const allow = await fetch(`${server.url}/health`, { method: "DELETE" });
      await allow.body?.cancel();
      assert.equal(allow.headers.get("allow"), "GET, HEAD");
    });
    await t.step(
      "the request log names route patterns, never a path or a query",
      async () => {
        const pii = "real-pathpii@example.org";
        await request(`${server.url}/users/${pii}?email=${pii}`);
        await request(`${server.url}/users/${crypto.randomUUID()}?q=${pii}`);
        await request(`${server.url}/nope/${pii}`);
        await server.waitForOutput(/GET \(no route\) 404/);
        const out = server.output();
        assert.ok(!out.includes("pathpii"), "the log holds the path");
        assert.match(out, /GET \/users\/:id 400/);
        assert.match(out, /GET \/users\/:id 404/);
        assert.doesNotMatch(out, /GET \/users\/[0-9a-f]{8}-/);
      },
    );
    await t.step("nothing was answered or logged as a server error", () => {
      assert.doesNotMatch(server.output(), /[A-Z]+ \S+ 5\d\d /);
      assert.doesNotMatch(server.output(), /\[(ERR|FTL)\]/);
    });
  },
});

Deno.test({
  name:
    "the dev server keeps its users across a restart, and --fresh starts from empty",
  async fn(t) {
    await using dbs = await openDevDatabases();
    let id = "";
    await t.step("register, then stop with SIGTERM: exit code 0", async () => {
      await using server = await startDevServer(dbs.env);
      const res = await register(server, {
        email: email("keep"),
        name: "Kept",
      });
      assert.equal(res.status, 201);
      id = String(res.body.id);
      await waitForWelcomeEmail(server, id);
      assert.equal(await server.stop("SIGTERM"), 0, server.output());
      assert.match(server.output(), /Stopped/);
    });
    await t.step("a restarted server still has the user", async () => {
      await using server = await startDevServer(dbs.env);
      const user = await request(`${server.url}/users/${id}`);
      assert.equal(user.status, 200);
      assert.equal(user.body.name, "Kept");
      assert.notEqual(user.body.welcomeEmailSentAt, null);
      assert.equal(await server.stop("SIGINT"), 0, server.output());
    });
    if (dbs.backend === "embedded") {
      await t.step("--fresh starts from empty embedded databases", async () => {
        await using server = await startDevServer(dbs.env, ["--fresh"]);
        const user = await request(`${server.url}/users/${id}`);
        assert.equal(user.status, 404);
        assert.equal(await server.stop("SIGTERM"), 0);
      });
    }
  },
});

Deno.test({
  name: "a graceful shutdown lets a running welcome-email job finish",
  async fn() {
    await using dbs = await openDevDatabases();
    const env = { ...dbs.env, MAILER_DELAY_MS: "3000" };
    await using server = await startDevServer(env);
    const res = await register(server, {
      email: email("inflight"),
      name: "In Flight",
    });
    assert.equal(res.status, 201);
    const id = String(res.body.id);
    await server.waitForOutput(/Sending welcome email for job/);
    // The running job counts as work left; after the restart below none is.
    const running = (await request(`${server.url}/stats`)).body;
    assert.equal(running.jobsWaiting, 1, JSON.stringify(running));
    assert.equal(await server.stop("SIGTERM"), 0, server.output());
    const out = server.output();
    const sent = out.indexOf("Sent welcome email for job");
    const stopped = out.indexOf("Stopped");
    assert.ok(sent > 0, `the job did not finish before exit:\n${out}`);
    assert.ok(
      sent < stopped,
      "the job finished after the server said it stopped",
    );

    // Nothing lost, nothing left to run twice: after a restart the email is
    // recorded once, the outbox is drained and no job waits, runs or retries.
    await using again = await startDevServer(env);
    const user = await request(`${again.url}/users/${id}`);
    assert.notEqual(user.body.welcomeEmailSentAt, null);
    const stats = (await request(`${again.url}/stats`)).body;
    assert.deepEqual(
      {
        mailboxMessages: stats.mailboxMessages,
        jobsWaiting: stats.jobsWaiting,
        outboxPending: stats.outboxPending,
        outboxInFlight: stats.outboxInFlight,
      },
      {
        mailboxMessages: 1,
        jobsWaiting: 0,
        outboxPending: 0,
        outboxInFlight: 0,
      },
    );
    assert.doesNotMatch(again.output(), /Sending welcome email/);
  },
});

Deno.test({
  name: "the dev server writes JSON lines with LOG_FORMAT=json",
  async fn() {
    await using dbs = await openDevDatabases();
    await using server = await startDevServer({
      ...dbs.env,
      LOG_FORMAT: "json",
    });
    const res = await register(server, { email: email("json"), name: "Jason" });
    assert.equal(res.status, 201);
    await server.waitForOutput(/"route":"\/users","status":201/);
    const lines = server.output().trim().split("\n");
    const records = lines.map((line) =>
      JSON.parse(line) as Record<string, unknown>
    );
    const request = records.find((r) =>
      (r.properties as Record<string, unknown>).route === "/users"
    );
    assert.ok(request, "a record of the request");
    // The message is rendered; the values are properties too.
    assert.match(String(request.message), /^POST \/users 201 [\d.]+ ms$/);
    assert.deepEqual(
      { ...(request.properties as Record<string, unknown>), durationMs: 0 },
      { method: "POST", route: "/users", status: 201, durationMs: 0 },
    );
    assert.equal(await server.stop("SIGTERM"), 0);
  },
});

Deno.test({
  name:
    "the dev server refuses a bad setting with a clear message and exit code 2",
  async fn() {
    for (
      const [env, args, message] of [
        [{ PORT: "eighty" }, [], /PORT must be an integer/],
        [{ LOG_FORMAT: "xml" }, [], /LOG_FORMAT must be "text" or "json"/],
        [{}, ["--wipe"], /Unknown argument "--wipe"/],
      ] as const
    ) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--frozen",
          new URL("../../src/dev/main.ts", import.meta.url).pathname,
          ...args,
        ],
        env: { ...env, DATA_DIR: "/nonexistent-never-created" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 2);
      assert.match(new TextDecoder().decode(out.stderr), message);
    }
  },
});
