// The dashboard handler on stand-in sources: sign-in, cross-site refusal,
// the snapshot (no fields unless asked), the actions and their dry runs,
// option checks, the errors it answers (bad bodies, missing sources, paths
// outside its base, failing sources). The real page in a real browser:
// tests/browser/.
import assert from "node:assert/strict";
import { dashboard } from "../../../../src/adapters/dashboard/mod.ts";
import {
  EMAIL,
  FakeJobs,
  FakeOutbox,
} from "../../../_helpers/dashboard_fakes.ts";
import { captureLogs, recordText } from "../../../_helpers/logs.ts";

const TOKEN = "unit-test-token";
const ORIGIN = "http://ops.test";

function setup(token: string | undefined) {
  const outbox = new FakeOutbox();
  const jobs = new FakeJobs();
  const handler = dashboard({ token, outbox, jobs });
  const call = (path: string, init: RequestInit = {}) =>
    handler(new Request(`${ORIGIN}/dashboard${path}`, init));
  return { outbox, jobs, handler, call };
}

const bearer = { authorization: `Bearer ${TOKEN}` };

async function signIn(
  call: ReturnType<typeof setup>["call"],
): Promise<string> {
  const response = await call("/login", {
    method: "POST",
    headers: {
      origin: ORIGIN,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ token: TOKEN }),
  });
  assert.equal(response.status, 303);
  const cookie = response.headers.get("set-cookie") ?? "";
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Path=\/dashboard/);
  assert.ok(!cookie.includes(TOKEN), "the cookie does not carry the token");
  return cookie.split(";")[0]!;
}

Deno.test("dashboard(): with a token, nothing is served without it", async (t) => {
  const { call } = setup(TOKEN);
  await t.step("the page is a 401 login form, the API a 401", async () => {
    const page = await call("");
    assert.equal(page.status, 401);
    const html = await page.text();
    assert.match(html, /<label for="token">Admin token<\/label>/);
    assert.doesNotMatch(html, /Parked events/);
    const api = await call("/api/snapshot");
    assert.equal(api.status, 401);
    assert.doesNotMatch(await api.text(), /user\.registered/);
  });
  await t.step("a wrong token, a forged or expired cookie: 401", async () => {
    const wrong = await call("/api/snapshot", {
      headers: { authorization: "Bearer nope" },
    });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    for (
      const cookie of [
        "aftercommit_dashboard=9999999999.forged",
        "aftercommit_dashboard=1.x",
      ]
    ) {
      const forged = await call("/api/snapshot", { headers: { cookie } });
      assert.equal(forged.status, 401, cookie);
      await forged.body?.cancel();
    }
    const login = await call("/login", {
      method: "POST",
      headers: {
        origin: ORIGIN,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "token=nope",
    });
    assert.equal(login.status, 401);
    assert.equal(login.headers.get("set-cookie"), null);
    assert.match(await login.text(), /not the admin token/);
  });
  await t.step(
    "the right token signs in; the cookie opens the page and the API",
    async () => {
      const cookie = await signIn(call);
      const page = await call("", { headers: { cookie } });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /Parked events/);
      const api = await call("/api/snapshot", { headers: { cookie } });
      assert.equal(api.status, 200);
      await api.body?.cancel();
    },
  );
  await t.step("the assets are public and hold no data", async () => {
    for (const path of ["/app.js", "/app.css"]) {
      const r = await call(path);
      assert.equal(r.status, 200);
      assert.match(
        r.headers.get("content-security-policy") ?? "",
        /default-src 'none'/,
      );
      await r.body?.cancel();
    }
  });
});

Deno.test("dashboard(): POSTs from another site are refused", async (t) => {
  const { call, outbox } = setup(TOKEN);
  const cookie = await signIn(call);
  const requeue = (headers: Record<string, string>) =>
    call("/api/outbox/requeue", {
      method: "POST",
      headers: { cookie, "content-type": "application/json", ...headers },
      body: JSON.stringify({ all: true }),
    });
  await t.step(
    "another Origin, or cross-site Sec-Fetch-Site: 403",
    async () => {
      for (
        const headers of [
          { origin: "https://evil.test" },
          { origin: ORIGIN, "sec-fetch-site": "cross-site" },
          { origin: "null" },
        ]
      ) {
        const r = await requeue(headers);
        assert.equal(r.status, 403, JSON.stringify(headers));
        await r.body?.cancel();
      }
    },
  );
  await t.step(
    "a cookie without Origin (not a browser page): 403",
    async () => {
      const r = await requeue({});
      assert.equal(r.status, 403);
      await r.body?.cancel();
    },
  );
  await t.step("a form post (not JSON): 415", async () => {
    const r = await call("/api/outbox/requeue", {
      method: "POST",
      headers: {
        cookie,
        origin: ORIGIN,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "all=true",
    });
    assert.equal(r.status, 415);
    await r.body?.cancel();
  });
  await t.step("a login from another site: 403", async () => {
    const r = await call("/login", {
      method: "POST",
      headers: {
        origin: "https://evil.test",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token: TOKEN }),
    });
    assert.equal(r.status, 403);
    await r.body?.cancel();
  });
  assert.deepEqual(outbox.requeued, [], "nothing was requeued");
});

Deno.test("dashboard(): the snapshot shows counts, rates and lists, fields only when asked", async () => {
  const { call, outbox } = setup(TOKEN);
  const first = await (await call("/api/snapshot", { headers: bearer })).json();
  assert.deepEqual(first.outbox, {
    pending: 1,
    inFlight: 2,
    parked: 1,
    done: 0,
    oldestPendingAgeSeconds: 3,
  });
  assert.deepEqual(first.parkedEvents, [{
    id: "e1",
    type: "user.registered",
    attempts: 10,
    lastError: "Error: audit store down",
    ageSeconds: 42,
  }]);
  assert.equal(first.queues[0].deadLetters, 1);
  assert.deepEqual(first.sources, { outbox: true, jobs: true });
  assert.equal(first.deadLetters[0].error, "Error: smtp refused");
  assert.equal(first.history.length, 1);
  assert.equal(first.history[0].jobsPerSecond, 4); // 8 in 2 s
  assert.equal(first.history[0].p99Ms, 9);
  assert.equal(first.history[0].eventsPerSecond, null); // no previous sample
  assert.ok(!JSON.stringify(first).includes(EMAIL));

  const withFields = await (await call("/api/snapshot?fields=1", {
    headers: bearer,
  })).json();
  assert.deepEqual(withFields.parkedEvents[0].payload, { email: EMAIL });
  assert.deepEqual(withFields.deadLetters[0].data, { email: EMAIL });

  // A source that fails: the page says so, with no driver message.
  outbox.fail = true;
  const { handler } = { handler: dashboard({ token: undefined, outbox }) };
  const down = await handler(
    new Request(`${ORIGIN}/dashboard/api/snapshot`),
  );
  assert.equal(down.status, 200);
  const text = await down.text();
  assert.match(text, /could not be read/);
  assert.deepEqual(JSON.parse(text).sources, { outbox: true, jobs: false });
  assert.ok(!text.includes(EMAIL));
});

Deno.test("dashboard(): requeue and retry ask for a count first, then act", async () => {
  const { call, outbox, jobs } = setup(TOKEN);
  const post = async (path: string, body: unknown) => {
    const r = await call(path, {
      method: "POST",
      headers: { ...bearer, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  };
  assert.deepEqual(
    await post("/api/outbox/requeue", { ids: ["e1"], dryRun: true }),
    { status: 200, body: { matched: 1 } },
  );
  assert.deepEqual(outbox.requeued, []);
  assert.deepEqual(await post("/api/outbox/requeue", { ids: ["e1"] }), {
    status: 200,
    body: { requeued: 1 },
  });
  assert.deepEqual(outbox.requeued, [{ ids: ["e1"] }]);
  assert.deepEqual(
    await post("/api/dead-letters/retry", { ids: ["j1"], dryRun: true }),
    { status: 200, body: { matched: 1 } },
  );
  assert.deepEqual(await post("/api/dead-letters/retry", { ids: ["j1"] }), {
    status: 200,
    body: { retried: 1 },
  });
  assert.deepEqual(jobs.retried, [{ ids: ["j1"] }]);
  // The repair API's own check answers 400 and changes nothing.
  const bad = await post("/api/outbox/requeue", { type: "" });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /bad type/);
  assert.equal(
    (await post("/api/outbox/requeue", { all: true, dryRun: "yes" })).status,
    400,
  );
});

Deno.test("dashboard(): without a token it is open, and still refuses cross-site POSTs", async () => {
  const { call } = setup(undefined);
  const page = await call("");
  assert.equal(page.status, 200);
  assert.doesNotMatch(await page.text(), /Sign out/);
  const r = await call("/api/outbox/requeue", {
    method: "POST",
    headers: {
      origin: "https://evil.test",
      "content-type": "application/json",
    },
    body: JSON.stringify({ all: true }),
  });
  assert.equal(r.status, 403);
  await r.body?.cancel();
});

Deno.test("dashboard(): bad options throw at once, naming the rule", () => {
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => dashboard({} as any),
    (e: Error) => e instanceof TypeError && /token is required/.test(e.message),
  );
  assert.throws(
    () => dashboard({ token: "" }),
    (e: Error) => e instanceof TypeError && /non-empty string/.test(e.message),
  );
  assert.throws(
    () => dashboard({ token: undefined, basePath: "dashboard/" }),
    (e: Error) =>
      e instanceof TypeError && /basePath must be a path/.test(e.message),
  );
  assert.throws(
    () => dashboard({ token: undefined, refreshSeconds: 0 }),
    (e: Error) =>
      e instanceof RangeError &&
      /options\.refreshSeconds must be between 1 and 60, received 0/.test(
        e.message,
      ),
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => dashboard({ token: undefined, outbox: {} as any }),
    (e: Error) =>
      e instanceof TypeError && /outbox lacks stats/.test(e.message),
  );
});

Deno.test("dashboard(): a repair whose body is not a JSON object: 400 showing the shapes it takes", async () => {
  const { call, outbox } = setup(TOKEN);
  for (const body of ["all=true", "null", "[1]", "42", '"all"', ""]) {
    const r = await call("/api/outbox/requeue", {
      method: "POST",
      headers: { ...bearer, "content-type": "application/json" },
      body,
    });
    assert.equal(r.status, 400, body);
    assert.deepEqual(await r.json(), {
      error:
        'the body must be a JSON object such as {"ids": ["…"]}, {"type": "user.registered"} or {"all": true}',
    }, body);
  }
  assert.deepEqual(outbox.requeued, [], "nothing was requeued");
});

Deno.test("dashboard(): a repair of a source it was not given: 404 naming it", async () => {
  const post = (handler: (r: Request) => Promise<Response>, path: string) =>
    handler(
      new Request(`${ORIGIN}/dashboard${path}`, {
        method: "POST",
        headers: { ...bearer, "content-type": "application/json" },
        body: JSON.stringify({ all: true }),
      }),
    );
  const outbox = new FakeOutbox();
  const noJobs = await post(
    dashboard({ token: TOKEN, outbox }),
    "/api/dead-letters/retry",
  );
  assert.equal(noJobs.status, 404);
  assert.deepEqual(await noJobs.json(), {
    error: "this dashboard has no job queue",
  });
  const jobs = new FakeJobs();
  const noOutbox = await post(
    dashboard({ token: TOKEN, jobs }),
    "/api/outbox/requeue",
  );
  assert.equal(noOutbox.status, 404);
  assert.deepEqual(await noOutbox.json(), {
    error: "this dashboard has no outbox",
  });
  assert.deepEqual(jobs.retried, []);
  assert.equal(jobs.letters.length, 1);
});

Deno.test("dashboard(): a path outside its base: 404 naming the base", async () => {
  const handler = dashboard({ token: undefined, basePath: "/ops/board" });
  for (
    const path of ["/", "/dashboard", "/ops", "/ops/boardx", "/ops/x/board"]
  ) {
    const r = await handler(new Request(`${ORIGIN}${path}`));
    assert.equal(r.status, 404, path);
    assert.deepEqual(await r.json(), {
      error: "the dashboard is served under /ops/board",
    }, path);
  }
  for (const path of ["/ops/board", "/ops/board/"]) {
    const r = await handler(new Request(`${ORIGIN}${path}`));
    assert.equal(r.status, 200, path);
    await r.body?.cancel();
  }
});

Deno.test("dashboard(): a source that fails a repair: 503, an error logged without its message", async () => {
  const { call, outbox } = setup(TOKEN);
  outbox.countParked = () => Promise.reject(new Error(`row ${EMAIL}`));
  const { records, result } = await captureLogs(async () => {
    const r = await call("/api/outbox/requeue", {
      method: "POST",
      headers: { ...bearer, "content-type": "application/json" },
      body: JSON.stringify({ all: true }),
    });
    return { status: r.status, body: await r.json() };
  });
  assert.deepEqual(result, {
    status: 503,
    body: { error: "the dashboard cannot answer right now" },
  });
  const errors = records.filter((r) => r.level === "error");
  assert.equal(errors.length, 1);
  assert.deepEqual(errors[0]!.category, ["aftercommit", "dashboard"]);
  assert.deepEqual(errors[0]!.properties, { error: "Error" });
  assert.ok(!records.some((r) => recordText(r).includes(EMAIL)));
  assert.equal(outbox.parked.length, 1, "nothing was requeued");
});

Deno.test("dashboard(): a job queue that cannot be read: the snapshot says which part", async () => {
  const { call, jobs } = setup(TOKEN);
  jobs.stats = () => Promise.reject(new Error(`row ${EMAIL}`));
  jobs.deadLetters = () => Promise.reject(new RangeError(`row ${EMAIL}`));
  const r = await call("/api/snapshot", { headers: bearer });
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.ok(!text.includes(EMAIL));
  const body = JSON.parse(text);
  assert.deepEqual(body.unavailable, [
    "The job queue's counts could not be read.",
    "The dead letters could not be read (RangeError).",
  ]);
  assert.deepEqual(body.queues, []);
  assert.deepEqual(body.deadLetters, []);
  assert.equal(body.history.at(-1).jobsPerSecond, null);
  // The outbox, which answered, is still shown.
  assert.equal(body.outbox.pending, 1);
  assert.equal(body.parkedEvents.length, 1);
});

Deno.test("dashboard(): a sign-in that is not a form: 415 with the form; an unknown route: 404 naming it", async () => {
  const { call } = setup(TOKEN);
  const login = await call("/login", {
    method: "POST",
    headers: { origin: ORIGIN, "content-type": "application/json" },
    body: JSON.stringify({ token: TOKEN }),
  });
  assert.equal(login.status, 415);
  assert.equal(login.headers.get("set-cookie"), null);
  assert.match(await login.text(), /<label for="token">Admin token<\/label>/);
  const unknown: [string, string][] = [
    ["GET", "/api/nope"],
    ["DELETE", "/api/snapshot"],
  ];
  for (const [method, path] of unknown) {
    const r = await call(path, { method, headers: bearer });
    assert.equal(r.status, 404, path);
    assert.deepEqual(await r.json(), {
      error:
        `no dashboard route for ${method} ${path}; open /dashboard in a browser`,
    });
  }
});
