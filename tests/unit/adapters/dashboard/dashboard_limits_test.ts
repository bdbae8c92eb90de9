// The dashboard behind a proxy that sends HTTP Basic credentials (the cookie
// still decides), and the body-size limit on bodies without a length.
import assert from "node:assert/strict";
import { dashboard } from "../../../../src/adapters/dashboard/mod.ts";
import { FakeJobs, FakeOutbox } from "../../../_helpers/dashboard_fakes.ts";

const TOKEN = "unit-test-token";
const ORIGIN = "http://ops.test";
const BASIC = { authorization: `Basic ${btoa("ops:proxy-password")}` };
const FORM = {
  origin: ORIGIN,
  "content-type": "application/x-www-form-urlencoded",
};
const LIMIT = 64 * 1024;

function setup() {
  const outbox = new FakeOutbox();
  const handler = dashboard({ token: TOKEN, outbox, jobs: new FakeJobs() });
  const call = (path: string, init: RequestInit = {}) =>
    handler(new Request(`${ORIGIN}/dashboard${path}`, init));
  return { outbox, call };
}

Deno.test("dashboard(): a proxy's Basic credentials leave the decision to the cookie", async (t) => {
  const { outbox, call } = setup();
  const login = await call("/login", {
    method: "POST",
    headers: { ...FORM, ...BASIC },
    body: new URLSearchParams({ token: TOKEN }),
  });
  assert.equal(login.status, 303);
  const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
  await t.step("a Basic header and a valid cookie: served", async () => {
    const page = await call("", { headers: { cookie, ...BASIC } });
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const api = await call("/api/snapshot", { headers: { cookie, ...BASIC } });
    assert.equal(api.status, 200);
    await api.body?.cancel();
    const requeue = await call("/api/outbox/requeue", {
      method: "POST",
      headers: {
        cookie,
        ...BASIC,
        origin: ORIGIN,
        "content-type": "application/json",
      },
      body: JSON.stringify({ all: true }),
    });
    assert.deepEqual(await requeue.json(), { requeued: 1 });
  });
  await t.step("a Basic header alone: 401", async () => {
    const r = await call("/api/snapshot", { headers: BASIC });
    assert.equal(r.status, 401);
    await r.body?.cancel();
  });
  await t.step(
    "the Bearer scheme in any case, with spaces or a tab: the token is read",
    async () => {
      for (const scheme of ["bearer ", "BEARER ", "Bearer  ", "Bearer\t"]) {
        const r = await call("/api/snapshot", {
          headers: { authorization: scheme + TOKEN },
        });
        assert.equal(r.status, 200, JSON.stringify(scheme));
        await r.body?.cancel();
      }
    },
  );
  await t.step("a wrong Bearer token with a valid cookie: 401", async () => {
    const r = await call("/api/snapshot", {
      headers: { cookie, authorization: "Bearer nope" },
    });
    assert.equal(r.status, 401);
    await r.body?.cancel();
  });
  await t.step(
    "a Basic header and a cookie without Origin (not a browser page): 403",
    async () => {
      const before = outbox.requeued.length;
      const r = await call("/api/outbox/requeue", {
        method: "POST",
        headers: { cookie, ...BASIC, "content-type": "application/json" },
        body: JSON.stringify({ all: true }),
      });
      assert.equal(r.status, 403);
      await r.body?.cancel();
      assert.equal(outbox.requeued.length, before, "nothing was requeued");
    },
  );
});

Deno.test("dashboard(): bodies over 64 KiB get 413, counted in bytes", async (t) => {
  const { call } = setup();
  await t.step(
    "a chunked body over the limit: 413, and it is not read to its end",
    async () => {
      const chunk = new Uint8Array(16 * 1024).fill(0x61); // "a"
      const total = 64 * 1024 * 1024;
      let pulled = 0;
      let cancelled = false;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulled >= total) return controller.close();
          pulled += chunk.byteLength;
          controller.enqueue(chunk);
        },
        cancel() {
          cancelled = true;
        },
      });
      const r = await call("/login", { method: "POST", headers: FORM, body });
      assert.equal(r.status, 413);
      assert.deepEqual(await r.json(), { error: "body too large" });
      assert.ok(
        pulled <= LIMIT + 4 * chunk.byteLength,
        `read ${pulled} bytes of ${total}`,
      );
      assert.ok(cancelled, "the body stream was cancelled");
    },
  );
  await t.step(
    "a body over the limit in bytes, under it in characters: 413",
    async () => {
      // "é" is two bytes in UTF-8: 40,000 characters, 80,000 bytes.
      const value = "é".repeat(40_000);
      const text = `token=${value}`;
      assert.ok(text.length < LIMIT);
      assert.ok(new TextEncoder().encode(text).byteLength > LIMIT);
      const r = await call("/login", {
        method: "POST",
        headers: FORM,
        body: new Blob([text]).stream(), // no content-length
      });
      assert.equal(r.status, 413);
      await r.body?.cancel();
    },
  );
  await t.step("a body at the limit is read: a wrong token, 401", async () => {
    const text = "token=" + "a".repeat(LIMIT - 6);
    const r = await call("/login", {
      method: "POST",
      headers: FORM,
      body: new Blob([text]).stream(),
    });
    assert.equal(r.status, 401);
    await r.body?.cancel();
  });
});
