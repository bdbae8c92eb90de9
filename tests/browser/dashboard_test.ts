// The dashboard in a real headless browser (Debian's chromium through
// puppeteer-core), on the real dev server with an ADMIN_TOKEN: sign-in,
// live counters and charts, an event parked by a failing handler, requeued
// from the page and delivered; a wrong token gets no data.
//
// Screenshots go to .artifacts/browser/ (git-ignored); with
// UPDATE_README_SCREENSHOT=1 the wide one is also written to
// docs/dashboard.png for the README.
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import {
  openDevDatabases,
  register,
  request,
  startDevServer,
} from "../_helpers/dev_server.ts";
import { artifactsDir, launchBrowser } from "../_helpers/browser.ts";

const TOKEN = "browser-test-admin-token";

async function text(page: Page, selector: string): Promise<string> {
  return await page.$eval(selector, (e) => e.textContent ?? "");
}

/** Waits until the element's text satisfies `test` (the page refreshes itself). */
async function waitForText(
  page: Page,
  selector: string,
  test: (text: string) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await text(page, selector);
    if (test(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}: ${selector} is "${value}"`,
      );
    }
    await page.waitForNetworkIdle({ idleTime: 100, timeout: 10_000 })
      .catch(() => {});
    await new Promise((r) => setTimeout(r, 100));
  }
}

function chartPoints(page: Page, chart: string, line: string): Promise<number> {
  return page.$eval(
    `#${chart} polyline.${line}`,
    (e) => Number(e.getAttribute("data-points") ?? 0),
  );
}

Deno.test("dashboard in a browser: sign-in, live flow, parked event requeued and delivered, wrong token gets no data", async (t) => {
  await using databases = await openDevDatabases();
  const failFile = `${await Deno.makeTempDir()}/fail-audit`;
  // The audit handler fails for these emails while the file exists.
  await Deno.writeTextFile(failFile, "^parked-");
  await using server = await startDevServer({
    ...databases.env,
    ADMIN_TOKEN: TOKEN,
    OUTBOX_MAX_ATTEMPTS: "2",
    DEV_FAIL_AUDIT_FILE: failFile,
  });
  await using chromium = await launchBrowser();
  const shots = await artifactsDir();
  const page = await chromium.browser.newPage();
  await page.setViewport({ width: 1280, height: 1000 });
  const dashboardUrl = `${server.url}/dashboard`;

  await t.step("without the token: 401, a login form and no data", async () => {
    const response = await page.goto(dashboardUrl);
    assert.equal(response?.status(), 401);
    assert.ok(await page.$("form input#token[type=password]"));
    assert.equal(await page.$("#parked-table"), null);
    const api = await page.evaluate(async () => {
      const r = await fetch("/dashboard/api/snapshot");
      return { status: r.status, body: await r.text() };
    });
    assert.equal(api.status, 401);
    assert.doesNotMatch(api.body, /outbox|queues|parked/i);

    await page.type("#token", "not-the-token");
    const [refused] = await Promise.all([
      page.waitForNavigation(),
      page.click("button[type=submit]"),
    ]);
    assert.equal(refused?.status(), 401);
    assert.match(await text(page, "#login-error"), /not the admin token/);
    assert.equal(await page.$("#parked-table"), null);
    // Nor does a wrong bearer token read anything.
    const wrong = await fetch(`${dashboardUrl}/api/snapshot`, {
      headers: { authorization: "Bearer not-the-token" },
    });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    await page.screenshot({ path: `${shots}/dashboard-login-refused.png` });
  });

  await t.step(
    "with the token: the dashboard, a session cookie the script cannot read",
    async () => {
      await page.type("#token", TOKEN);
      const [signedIn] = await Promise.all([
        page.waitForNavigation(),
        page.click("button[type=submit]"),
      ]);
      assert.equal(signedIn?.status(), 200);
      assert.equal(page.url(), dashboardUrl); // no token in the URL
      assert.equal(await page.evaluate("document.cookie"), ""); // HttpOnly
      const [cookie] = await page.cookies();
      assert.equal(cookie?.httpOnly, true);
      assert.equal(cookie?.sameSite, "Strict");
      assert.ok(!cookie?.value.includes(TOKEN));
      await waitForText(
        page,
        "#updated",
        (s) => s.startsWith("Updated"),
        "first refresh",
      );
      assert.equal(await text(page, "#done"), "0");
    },
  );

  await t.step(
    "registrations move the counters and the charts, without a reload",
    async () => {
      await page.evaluate("window.marker = 'same page'");
      const pointsBefore = await chartPoints(page, "latency-chart", "l1");
      // Twenty registrations spread over four refreshes.
      for (let batch = 0; batch < 4; batch++) {
        const answers = await Promise.all(
          Array.from({ length: 5 }, (_, i) =>
            register(server, {
              email: `user-${batch}-${i}@example.org`,
              name: `User ${batch} ${i}`,
            })),
        );
        assert.deepEqual(answers.map((a) => a.status), [
          201,
          201,
          201,
          201,
          201,
        ]);
        // The next batch after the page's next sample, not after a sleep.
        const samples = await chartPoints(page, "rate-chart", "l1");
        await page.waitForFunction(
          `Number(document.querySelector("#rate-chart polyline.l1")?.getAttribute("data-points")) > ${samples}`,
          { timeout: 30_000 },
        );
      }
      await waitForText(
        page,
        "#done",
        (s) => Number(s) === 20,
        "20 delivered events",
      );
      const p50 = await waitForText(
        page,
        "#p50",
        (s) => /ms|s$/.test(s),
        "a start latency",
      );
      assert.match(p50, /^\d+(\.\d)? m?s$/);
      await waitForText(
        page,
        "#queues-table tbody",
        (s) => s.startsWith("send-welcome-email"),
        "the queue row",
      );
      const pointsAfter = await chartPoints(page, "latency-chart", "l1");
      assert.ok(
        pointsAfter > pointsBefore,
        `latency chart points ${pointsBefore} → ${pointsAfter}`,
      );
      const ratePoints = await chartPoints(page, "rate-chart", "l1");
      assert.ok(ratePoints >= 2, `events/s chart has ${ratePoints} points`);
      const label = await page.$eval(
        "#rate-chart",
        (e) => e.getAttribute("aria-label"),
      );
      assert.match(label ?? "", /samples/);
      assert.equal(
        await page.evaluate("window.marker"),
        "same page",
        "the page was not reloaded",
      );
    },
  );

  await t.step(
    "a failing handler parks an event; requeue with the keyboard, confirm, delivered",
    async () => {
      const parked = await register(server, {
        email: "parked-ada@example.org",
        name: "Ada Parked",
      });
      assert.equal(parked.status, 201);
      await waitForText(page, "#parked", (s) => s === "1", "one parked event");
      await waitForText(
        page,
        "#parked-table tbody",
        (s) => s.includes("Audit store refused"),
        "the parked row",
      );
      const row = await page.$eval(
        "#parked-table tbody tr",
        (tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent),
      );
      assert.equal(row[0], "user.registered");
      assert.equal(row[1], "2"); // OUTBOX_MAX_ATTEMPTS
      assert.match(row[2] ?? "", /^Error: Audit store refused the event/);
      // No personal data by default: the fields column is hidden and empty.
      const page1 = await page.content();
      assert.ok(!page1.includes("parked-ada@example.org"));
      assert.equal(
        await page.evaluate(
          "getComputedStyle(document.querySelector('#parked-table td.fields')).display",
        ),
        "none",
      );
      await page.screenshot({
        path: `${shots}/dashboard-parked.png`,
        fullPage: true,
      });
      if (Deno.env.get("UPDATE_README_SCREENSHOT") === "1") {
        await page.screenshot({
          path: new URL("../../docs/dashboard.png", import.meta.url).pathname,
          fullPage: true,
        });
      }
      await page.setViewport({ width: 390, height: 844 });
      // On a phone the page is one column: nothing wider than the screen
      // (wide tables scroll inside their own region).
      assert.ok(
        await page.evaluate("document.documentElement.scrollWidth") as number <=
          390,
        `the page scrolls sideways on a phone: ${await page.evaluate(
          "[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 391).map((e) => e.tagName + '#' + e.id + '.' + e.className + ':' + Math.round(e.getBoundingClientRect().right)).slice(0, 12).join(' ')",
        )}`,
      );
      await page.screenshot({
        path: `${shots}/dashboard-phone.png`,
        fullPage: true,
      });
      await page.setViewport({ width: 1280, height: 1000 });

      // The bug is fixed; the operator requeues from the keyboard.
      await Deno.remove(failFile);
      await page.focus("#parked-table tbody tr button");
      await page.keyboard.press("Enter");
      await page.waitForSelector("dialog#confirm[open]");
      assert.match(
        await text(page, "#confirm-text"),
        /Requeue this parked user\.registered event\?/,
      );
      assert.equal(
        await page.evaluate("document.activeElement?.id"),
        "confirm-ok",
      );
      await page.screenshot({ path: `${shots}/dashboard-confirm.png` });
      await page.keyboard.press("Enter");
      const result = await waitForText(
        page,
        "#result",
        (s) => s !== "",
        "the result",
      );
      assert.match(result, /^Requeued 1 parked event; the relay dispatches it/);

      await waitForText(page, "#parked", (s) => s === "0", "no parked event");
      await waitForText(
        page,
        "#done",
        (s) => s === "21",
        "the requeued event delivered",
      );
      assert.equal(
        await page.$eval("#parked-empty", (e) => e.hasAttribute("hidden")),
        false,
      );
      // Delivered means its handlers ran: the audit row and the welcome email.
      const stats = await request(`${server.url}/stats`);
      assert.equal(stats.body.auditRows, 21);
      assert.equal(stats.body.outboxParked, 0);
      await page.screenshot({
        path: `${shots}/dashboard-requeued.png`,
        fullPage: true,
      });
    },
  );

  await t.step("signing out ends the session", async () => {
    await Promise.all([
      page.waitForNavigation(),
      page.click("header form button"),
    ]);
    const response = await page.goto(dashboardUrl);
    assert.equal(response?.status(), 401);
  });

  await page.close();
  assert.doesNotMatch(server.output(), new RegExp(TOKEN));
  assert.doesNotMatch(server.output(), /parked-ada@example\.org/);
  await Deno.remove(failFile.replace(/\/fail-audit$/, ""), { recursive: true });
});
