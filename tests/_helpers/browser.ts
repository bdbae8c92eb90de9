// A headless Chromium for browser tests: Debian's `chromium` (CI installs it
// with apt-get) driven by puppeteer-core, with a fresh profile folder that
// is removed afterwards.
import puppeteer, { type Browser } from "puppeteer-core";

/** Where Debian installs Chromium; CHROMIUM_PATH overrides it. */
export const CHROMIUM = Deno.env.get("CHROMIUM_PATH") || "/usr/bin/chromium";

/** A running browser that closes and removes its profile on dispose. */
export interface TestBrowser extends AsyncDisposable {
  readonly browser: Browser;
}

/** Starts headless Chromium with a new, empty profile. */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = await Deno.makeTempDir({ prefix: "aftercommit-chromium-" });
  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
      ],
    });
  } catch (e) {
    await Deno.remove(profile, { recursive: true });
    throw new Error(
      `Cannot start Chromium at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`,
      { cause: e },
    );
  }
  return {
    browser,
    async [Symbol.asyncDispose]() {
      try {
        await browser.close();
      } finally {
        await Deno.remove(profile, { recursive: true }).catch(() => {});
      }
    },
  };
}

/** Where browser tests write their screenshots (git-ignored). */
export async function artifactsDir(): Promise<string> {
  const dir = new URL("../../.artifacts/browser/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}
