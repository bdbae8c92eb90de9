// The dashboard page's other controls in headless Chromium, on stand-in
// sources served in-process: the fields toggle, retrying a dead letter
// (cancel, then confirm), requeueing by type and all, a source that fails,
// labels and accessible names. The dev-server flow: dashboard_test.ts.
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { dashboard } from "../../src/adapters/dashboard/mod.ts";
import { EMAIL, FakeJobs, FakeOutbox } from "../_helpers/dashboard_fakes.ts";
import { artifactsDir, launchBrowser } from "../_helpers/browser.ts";

async function text(page: Page, selector: string): Promise<string> {
  return await page.$eval(selector, (e) => e.textContent ?? "");
}

async function until(what: string, check: () => Promise<boolean>) {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function answer(page: Page, button: "ok" | "cancel"): Promise<void> {
  await page.waitForSelector("dialog#confirm[open]");
  await page.click(`#confirm-${button}`);
}

Deno.test("dashboard page: fields toggle, dead-letter retry, requeue by type and all, a failing source", async (t) => {
  const outbox = new FakeOutbox();
  const jobs = new FakeJobs();
  const handler = dashboard({
    token: undefined,
    outbox,
    jobs,
    refreshSeconds: 1,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handler,
  );
  try {
    await using chromium = await launchBrowser();
    const shots = await artifactsDir();
    const page = await chromium.browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const response = await page.goto(
      `http://127.0.0.1:${server.addr.port}/dashboard`,
    );
    assert.equal(response?.status(), 200);
    await until(
      "the first refresh",
      async () => (await text(page, "#updated")).startsWith("Updated"),
    );

    await t.step(
      "every control has a label or an accessible name",
      async () => {
        const unlabelled = await page.evaluate(
          "[...document.querySelectorAll('input, select')].filter((e) => e.labels.length === 0).map((e) => e.id)",
        );
        assert.deepEqual(unlabelled, []);
        const nameless = await page.evaluate(
          "[...document.querySelectorAll('button')].filter((b) => !(b.getAttribute('aria-label') || b.textContent.trim())).length",
        );
        assert.equal(nameless, 0);
        const retryName = await page.$eval(
          "#dead-table tbody button",
          (b) => b.getAttribute("aria-label"),
        );
        assert.equal(retryName, "Retry dead letter j1 of send-welcome-email");
      },
    );

    await t.step(
      "fields stay hidden until the operator turns them on",
      async () => {
        assert.ok(!(await page.content()).includes(EMAIL));
        await page.click("#show-fields");
        await until(
          "the fields",
          async () => (await page.content()).includes(EMAIL),
        );
        const shown = await page.$$eval(
          "td.fields code",
          (codes) => codes.map((c) => c.textContent),
        );
        assert.deepEqual(shown, [
          JSON.stringify({ email: EMAIL }),
          JSON.stringify({ email: EMAIL }),
        ]);
        await page.screenshot({
          path: `${shots}/dashboard-fields.png`,
          fullPage: true,
        });
        await page.click("#show-fields");
        await until(
          "the fields gone",
          async () => !(await page.content()).includes(EMAIL),
        );
      },
    );

    await t.step(
      "retry a dead letter: cancel changes nothing, confirm retries it",
      async () => {
        await page.click("#dead-table tbody button");
        await page.waitForSelector("dialog#confirm[open]");
        assert.match(
          await text(page, "#confirm-text"),
          /^Retry this dead letter of send-welcome-email\?/,
        );
        await answer(page, "cancel");
        await until(
          "the cancel note",
          async () => (await text(page, "#result")).startsWith("Cancelled"),
        );
        assert.deepEqual(jobs.retried, []);

        await page.click("#dead-table tbody button");
        await answer(page, "ok");
        await until(
          "the retry result",
          async () => (await text(page, "#result")).startsWith("Retried"),
        );
        assert.equal(
          await text(page, "#result"),
          "Retried 1 dead letter: back in its queue as new jobs.",
        );
        assert.deepEqual(jobs.retried, [{ ids: ["j1"] }]);
        await until(
          "the empty dead-letter list",
          () => page.$eval("#dead-empty", (e) => !e.hasAttribute("hidden")),
        );
      },
    );

    await t.step("requeue by type, then all", async () => {
      await page.select("#requeue-type", "user.registered");
      await page.click("#requeue-type-button");
      await page.waitForSelector("dialog#confirm[open]");
      assert.equal(
        await text(page, "#confirm-text"),
        "Requeue 1 parked user.registered event?",
      );
      await answer(page, "ok");
      await until(
        "the requeue result",
        async () => (await text(page, "#result")).startsWith("Requeued"),
      );
      assert.deepEqual(outbox.requeued, [{ type: "user.registered" }]);
      await until(
        "the buttons disabled with nothing parked",
        () =>
          page.$eval("#requeue-all-button", (b) => b.hasAttribute("disabled")),
      );

      outbox.parked = [1, 2].map((n) => ({
        id: `p${n}`,
        type: n === 1 ? "order.placed" : "user.registered",
        attempts: 10,
        lastError: "Error: still failing",
        createdAt: new Date(0),
        parkedAt: new Date(0),
        ageSeconds: 5,
      }));
      await until(
        "two parked rows",
        async () =>
          (await page.$$("#parked-table tbody tr")).length === 2 &&
          !(await page.$eval(
            "#requeue-all-button",
            (b) => b.hasAttribute("disabled"),
          )),
      );
      assert.deepEqual(
        await page.$$eval(
          "#requeue-type option",
          (options) => options.map((o) => o.textContent),
        ),
        ["order.placed", "user.registered"],
      );
      await page.click("#requeue-all-button");
      await page.waitForSelector("dialog#confirm[open]");
      assert.equal(
        await text(page, "#confirm-text"),
        "Requeue all 2 parked events?",
      );
      await answer(page, "ok");
      await until(
        "the second requeue",
        () => Promise.resolve(outbox.requeued.length === 2),
      );
      assert.deepEqual(outbox.requeued[1], { all: true });
      await until(
        "its result",
        async () =>
          (await text(page, "#result")).startsWith("Requeued 2 parked events"),
      );
    });

    await t.step(
      "a source that fails is reported on the page, without its message",
      async () => {
        outbox.fail = true;
        await until(
          "the problem note",
          async () =>
            (await text(page, "#problem")).includes(
              "The outbox's counts could not be read.",
            ),
        );
        assert.ok(!(await text(page, "#problem")).includes(EMAIL));
        assert.equal(await text(page, "#pending"), "–"); // no stale count
        outbox.fail = false;
        await until(
          "the note gone",
          () => page.$eval("#problem", (e) => e.hasAttribute("hidden")),
        );
      },
    );
    await page.close();
  } finally {
    await server.shutdown();
  }
});
