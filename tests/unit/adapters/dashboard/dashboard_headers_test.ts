// The headers the dashboard's page is served with, as the README promises:
// a strict Content-Security-Policy (scripts and styles from itself only),
// `frame-ancestors 'none'` and `X-Frame-Options: DENY`, so another site can
// neither frame the page (clickjacking) nor run script in it.
import assert from "node:assert/strict";
import { dashboard } from "../../../../src/adapters/dashboard/mod.ts";
import { FakeJobs, FakeOutbox } from "../../../_helpers/dashboard_fakes.ts";

const ORIGIN = "http://ops.test";

function call(token: string | undefined, path = ""): Promise<Response> {
  const handler = dashboard({
    token,
    outbox: new FakeOutbox(),
    jobs: new FakeJobs(),
  });
  return handler(new Request(`${ORIGIN}/dashboard${path}`));
}

/** The policy's directives: name → its sources. */
function directives(policy: string): Map<string, string[]> {
  return new Map(
    policy.split(";").map((d) => d.trim()).filter((d) => d !== "").map(
      (d) => {
        const [name, ...sources] = d.split(/\s+/);
        return [name!.toLowerCase(), sources];
      },
    ),
  );
}

function assertFramingAndScriptsLocked(response: Response): void {
  assert.equal(response.headers.get("x-frame-options"), "DENY");
  const policy = response.headers.get("content-security-policy");
  assert.ok(policy !== null, "the page has a Content-Security-Policy");
  const csp = directives(policy);
  assert.deepEqual(csp.get("frame-ancestors"), ["'none'"], policy);
  assert.deepEqual(csp.get("default-src"), ["'none'"], policy);
  assert.deepEqual(csp.get("script-src"), ["'self'"], policy);
  assert.deepEqual(csp.get("style-src"), ["'self'"], policy);
  assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|\*/, policy);
}

Deno.test("dashboard(): the page cannot be framed and runs only its own script and style", async (t) => {
  await t.step("the open page (no token)", async () => {
    const page = await call(undefined);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await page.text(), /Parked events/);
    assertFramingAndScriptsLocked(page);
  });
  await t.step("the sign-in page (with a token)", async () => {
    const page = await call("a-token");
    assert.equal(page.status, 401);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await page.text(), /Admin token/);
    assertFramingAndScriptsLocked(page);
  });
});
