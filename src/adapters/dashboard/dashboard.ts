// The dashboard's request handler: sign-in, the snapshot the page polls and
// the two repairs. The page itself is in _assets.ts.
import { getLogger } from "@logtape/logtape";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { OutboxAdmin, OutboxStats } from "../postgres/mod.ts";
import type { PgBossJobQueue, QueueCounts } from "../pg-boss/mod.ts";
import {
  assertObject,
  fail,
  integer,
  matches,
  readOptions,
  type Rule,
  text,
} from "../../internal/rules.ts";
import { dashboardPage, loginPage, SCRIPT, STYLE } from "./_assets.ts";

const logger = getLogger(["aftercommit", "dashboard"]);

/** What the dashboard reads and repairs in the outbox: an `OutboxAdmin` fits. */
export type DashboardOutbox = Pick<
  OutboxAdmin,
  "stats" | "listParked" | "countParked" | "requeueParked"
>;

/** What the dashboard reads and repairs in the job queue: a `PgBossJobQueue` fits. */
export type DashboardJobs = Pick<
  PgBossJobQueue,
  "stats" | "deadLetters" | "countDeadLetters" | "retryDeadLetters"
>;

/** Options of {@linkcode dashboard}. */
export interface DashboardOptions {
  /**
   * The admin token the page and its actions need (a sign-in form, or
   * `Authorization: Bearer <token>`); required, `undefined` means no sign-in.
   */
  readonly token: string | undefined;
  /** The outbox to show and repair. Default: no panel. */
  readonly outbox?: DashboardOutbox;
  /** The job queue to show and repair. Default: no panel. */
  readonly jobs?: DashboardJobs;
  /** The path every URL it serves starts with. Default: "/dashboard". */
  readonly basePath?: string;
  /** Seconds between two refreshes (1 to 60). Default: 2. */
  readonly refreshSeconds?: number;
  /** Seconds of history the charts show (60 to 3600). Default: 300. */
  readonly historySeconds?: number;
  /** Most parked events and dead letters listed (1 to 1,000). Default: 50. */
  readonly listLimit?: number;
  /** Seconds a sign-in lasts (60 to 604,800). Default: 43200. */
  readonly sessionSeconds?: number;
  /**
   * Origins (`https://ops.example.com`) allowed to POST besides the
   * request's own host, for a proxy that rewrites `Host`.
   * @default {[]}
   */
  readonly allowedOrigins?: readonly string[];
}

/** A request handler, as `Deno.serve` takes it. */
export type DashboardHandler = (request: Request) => Promise<Response>;

const SESSION = /(?:^|;)\s*aftercommit_dashboard=([^;]*)/;
const BEARER = /^bearer[ \t]+(.+)$/i; // the scheme is case-insensitive
const MAX_BODY_BYTES = 64 * 1024;
const ASSETS: Record<string, [string, string] | undefined> = {
  "/app.css": [STYLE, "text/css"],
  "/app.js": [SCRIPT, "text/javascript"],
};
// The methods the dashboard calls on each source: stats, list, count, act.
const METHODS = {
  outbox: ["stats", "listParked", "countParked", "requeueParked"],
  jobs: ["stats", "deadLetters", "countDeadLetters", "retryDeadLetters"],
} as const;
// The repairs: the source, the answer's key, what the log line counts.
const REPAIRS: Record<string, [keyof typeof METHODS, string, string]> = {
  "/api/outbox/requeue": ["outbox", "requeued", "parked outbox events"],
  "/api/dead-letters/retry": ["jobs", "retried", "dead letters"],
};
const FORBIDDEN = {
  error: "cross-site request refused: send it from the dashboard's own page",
};

/**
 * Makes the dashboard's request handler: a live page of the flow, the outbox
 * and the jobs, with requeue and retry after a confirmation, all under
 * `basePath`. POSTs must come from the dashboard's own origin; logs never
 * name the token or any event or job data.
 */
export function dashboard(options: DashboardOptions): DashboardHandler {
  const action = "create dashboard";
  assertObject(options, "options", action);
  if (!("token" in (options ?? {}))) {
    fail(
      action,
      "options.token is required: pass the admin token, or token: undefined to serve the dashboard without sign-in",
    );
  }
  const config = readOptions(options, OPTIONS, action);
  const { token, outbox, jobs, refreshSeconds, historySeconds } = config;
  const base = config.basePath ?? "/dashboard";
  const bearer = token === undefined ? undefined : sha256(token);
  const isToken = (presented: string) =>
    timingSafeEqual(sha256(presented), bearer!);
  // The session cookie is "<expiry>.<HMAC-SHA256(token, expiry)>": any
  // process with the same token can check it, and it does not reveal it.
  const sign = (expires: string) =>
    createHmac("sha256", token!)
      .update(`aftercommit-dashboard-session:${expires}`)
      .digest("base64url");
  // Signs in (a session `value` for `seconds`) or out, back to the page.
  const session = (value: string, seconds: number, secure = "") =>
    respond(303, null, {
      location: base,
      "set-cookie":
        `aftercommit_dashboard=${value}; Path=${base}; Max-Age=${seconds}; HttpOnly; SameSite=Strict${secure}`,
    });
  // The charts' points: `t` (milliseconds since the epoch), the rates.
  const history: { t: number; [rate: string]: number | null }[] = [];
  let previous: { t: number; done: number | null } | undefined;
  let sampling: Promise<void> | undefined;
  let latestOutbox: OutboxStats | null = null; // from the latest sample
  let latestQueues: readonly QueueCounts[] | null = null;

  function isSignedIn(request: Request): boolean {
    if (token === undefined) return true;
    // Only a Bearer header is a token; another scheme (a proxy's Basic
    // credentials) leaves the decision to the cookie.
    const bearer = BEARER.exec(request.headers.get("authorization") ?? "");
    if (bearer !== null) return isToken(bearer[1]!);
    const cookie = request.headers.get("cookie")?.match(SESSION)?.[1]?.trim();
    const [, expires, signature] = cookie?.match(/^(\d+)\.([^.]+)/) ?? [];
    if (!expires || !signature || Number(expires) * 1000 < Date.now()) {
      return false;
    }
    return timingSafeEqual(sha256(signature), sha256(sign(expires)));
  }

  // A POST must come from a page of this dashboard: a browser sends Origin
  // (and Sec-Fetch-Site) with it, and another site's page cannot forge them.
  function fromThisSite(request: Request, url: URL): boolean {
    const site = request.headers.get("sec-fetch-site");
    if (site !== null && site !== "same-origin" && site !== "none") {
      return false;
    }
    const origin = request.headers.get("origin");
    if (origin === null) {
      // Not a browser: only a client that presents the token itself passes.
      return BEARER.test(request.headers.get("authorization") ?? "") ||
        token === undefined && site === null;
    }
    return config.allowedOrigins.includes(origin) ||
      URL.parse(origin)?.host === url.host;
  }

  async function sample(): Promise<void> {
    const now = Date.now();
    const unavailable = (source: string) => (e: unknown) =>
      void logger.warn("Dashboard could not read the {source}: {error}", {
        source,
        error: errorName(e),
      });
    const windowSeconds = previous === undefined
      ? refreshSeconds
      : Math.min(3600, Math.max(1, Math.round((now - previous.t) / 1000)));
    const [counts, queue] = await Promise.all([
      outbox?.stats().catch(unavailable("outbox")),
      jobs?.stats({ windowSeconds }).catch(unavailable("jobs")),
    ]);
    const done = counts ? counts.done : null;
    history.push({
      t: now,
      eventsPerSecond: previous?.done != null && done !== null
        ? Math.max(0, done - previous.done) / ((now - previous.t) / 1000)
        : null,
      jobsPerSecond: queue
        ? queue.window.completed / queue.window.seconds
        : null,
      p50Ms: queue?.window.startLatencyP50Ms ?? null,
      p99Ms: queue?.window.startLatencyP99Ms ?? null,
    });
    previous = { t: now, done };
    // Drop the points older than the charts show (never the new one).
    const since = now - historySeconds * 1000;
    history.splice(0, history.findIndex((point) => point.t >= since));
    [latestOutbox, latestQueues] = [counts ?? null, queue?.queues ?? null];
  }

  async function snapshot(fields: boolean): Promise<object> {
    // One sample per refresh interval, however many pages are open; no
    // timer runs while nobody looks.
    const last = history.at(-1);
    if (!last || Date.now() - last.t >= refreshSeconds * 800) {
      sampling ??= sample().finally(() => sampling = undefined);
      await sampling;
    }
    const problems: string[] = [];
    // A listed row with only the fields it may show, its age in seconds.
    const listed = async (
      rows: Promise<{ ageSeconds: number }[]> | undefined,
      keys: readonly string[],
      what: string,
    ) => {
      try {
        return (await rows ?? []).map((row) => ({
          ...Object.fromEntries(
            Object.entries(row).filter(([k]) => keys.includes(k)),
          ),
          ageSeconds: Math.round(row.ageSeconds),
        }));
      } catch (e) {
        problems.push(`${what} could not be read (${errorName(e)}).`);
        return [];
      }
    };
    // Each source reads the flag it knows and leaves the other.
    const list = {
      limit: config.listLimit,
      includePayload: fields,
      includeData: fields,
    };
    const [parkedEvents, deadLetters] = await Promise.all([
      listed(
        outbox?.listParked(list),
        ["id", "type", "attempts", "lastError", "payload"],
        "The outbox's parked events",
      ),
      listed(
        jobs?.deadLetters(list),
        ["id", "queue", "attempts", "error", "data"],
        "The dead letters",
      ),
    ]);
    if (outbox !== undefined && latestOutbox === null) {
      problems.unshift("The outbox's counts could not be read.");
    }
    if (jobs !== undefined && latestQueues === null) {
      problems.unshift("The job queue's counts could not be read.");
    }
    return {
      at: new Date().toISOString(),
      historySeconds,
      sources: { outbox: outbox !== undefined, jobs: jobs !== undefined },
      history,
      outbox: latestOutbox,
      parkedEvents,
      queues: latestQueues ?? [],
      deadLetters,
      unavailable: problems,
    };
  }

  // Requeue parked events or retry dead letters: count first (a dry run
  // stops there), then act.
  async function repair(
    request: Request,
    [name, key, noun]: [keyof typeof METHODS, string, string],
  ): Promise<Response> {
    // A form on another site cannot send JSON without a preflight.
    const text = await readBody(request, /^application\/json\s*(;|$)/i, {
      error: "send the selection as JSON (content-type: application/json)",
    });
    if (text instanceof Response) return text;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch { /* not JSON: answered below */ }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      return respond(400, {
        error:
          'the body must be a JSON object such as {"ids": ["…"]}, {"type": "user.registered"} or {"all": true}',
      });
    }
    const { dryRun, ...selection } = body as Record<string, unknown>;
    if (dryRun !== undefined && typeof dryRun !== "boolean") {
      return respond(400, { error: "dryRun must be true or false" });
    }
    // Both methods take a selection and return a count.
    const source = config[name] as
      | Record<string, (selection: unknown) => Promise<number>>
      | undefined;
    if (source === undefined) {
      return respond(404, {
        error: `this dashboard has no ${name === "jobs" ? "job queue" : name}`,
      });
    }
    const [, , count, act] = METHODS[name];
    try {
      const matched = await source[count]!(selection);
      if (dryRun === true) return respond(200, { matched });
      const changed = await source[act]!(selection);
      logger.info(`Dashboard ${key} {count} ${noun}`, { count: changed });
      return respond(200, { [key]: changed });
    } catch (e) {
      // The repair API's own checks: a bad selection changes nothing.
      if (e instanceof TypeError || e instanceof RangeError) {
        return respond(400, { error: e.message });
      }
      throw e;
    }
  }

  async function login(request: Request, url: URL): Promise<Response> {
    if (token === undefined) return respond(303, null, { location: base });
    const form = /^application\/x-www-form-urlencoded/;
    const text = await readBody(request, form, loginPage(base, true));
    if (text instanceof Response) return text;
    if (!isToken(new URLSearchParams(text).get("token") ?? "")) {
      logger.warn("Dashboard sign-in refused: wrong token");
      return respond(401, loginPage(base, true));
    }
    const { sessionSeconds } = config;
    const expires = String(Math.floor(Date.now() / 1000) + sessionSeconds);
    const secure = url.protocol === "https:" ? "; Secure" : "";
    return session(`${expires}.${sign(expires)}`, sessionSeconds, secure);
  }

  async function route(request: Request, url: URL): Promise<Response> {
    const path = url.pathname.slice(base.length).replace(/\/+$/, "");
    const { method } = request;
    const read = method === "GET" || method === "HEAD";
    const asset = ASSETS[path];
    if (asset !== undefined && read) {
      return respond(200, asset[0], {
        "content-type": `${asset[1]}; charset=utf-8`,
        "cache-control": "no-cache",
      });
    }
    if ((path === "/login" || path === "/logout") && method === "POST") {
      if (!fromThisSite(request, url)) return respond(403, FORBIDDEN);
      return path === "/login" ? login(request, url) : session("", 0);
    }
    const signedIn = isSignedIn(request);
    if (path === "" && read) {
      return signedIn
        ? respond(200, dashboardPage(base, refreshSeconds, token !== undefined))
        : respond(401, loginPage(base, false));
    }
    if (path.startsWith("/api/") && !signedIn) {
      return respond(401, {
        error:
          "sign in at the dashboard, or send Authorization: Bearer <admin token>",
      }, { "www-authenticate": 'Bearer realm="dashboard"' });
    }
    if (path === "/api/snapshot" && read) {
      return respond(
        200,
        await snapshot(url.searchParams.get("fields") === "1"),
      );
    }
    const repairs = REPAIRS[path]; // no key of Object.prototype starts with "/"
    if (repairs !== undefined && method === "POST") {
      if (!fromThisSite(request, url)) return respond(403, FORBIDDEN);
      return repair(request, repairs);
    }
    return respond(404, {
      error: `no dashboard route for ${method} ${
        path || "/"
      }; open ${base} in a browser`,
    });
  }

  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== base && !url.pathname.startsWith(base + "/")) {
      return respond(404, { error: `the dashboard is served under ${base}` });
    }
    try {
      return await route(request, url);
    } catch (e) {
      logger.error("Dashboard request failed: {error}", {
        error: errorName(e),
      });
      return respond(503, { error: "the dashboard cannot answer right now" });
    }
  };
}

// A source must have the methods the dashboard calls.
function source<T>(methods: readonly string[], fits: string): Rule<T> {
  return (value, what, action) => {
    const missing = methods.filter((m) =>
      typeof (value as Record<string, unknown> | null)?.[m] !== "function"
    );
    return value === undefined || missing.length === 0
      ? value as T
      : fail(action, `${what} lacks ${missing.join(", ")}; pass ${fits}`);
  };
}

const OPTIONS = {
  token: text(),
  outbox: source<DashboardOutbox | undefined>(METHODS.outbox, "an OutboxAdmin"),
  jobs: source<DashboardJobs | undefined>(METHODS.jobs, "a PgBossJobQueue"),
  basePath: matches(
    /^\/[A-Za-z0-9._~\-/]*[^/]$/,
    'a path such as "/dashboard" (starting with "/", not ending with it)',
  ),
  refreshSeconds: integer(1, 60, 2),
  historySeconds: integer(60, 3600, 300),
  listLimit: integer(1, 1000, 50),
  sessionSeconds: integer(60, 604_800, 43_200),
  allowedOrigins: (value: unknown, what: string, action: string) => {
    const origins = value === undefined ? [] : value;
    return Array.isArray(origins) &&
        origins.every((o) => /^https?:\/\/[^/]+$/.test(String(o)))
      ? origins as readonly string[]
      : fail(
        action,
        `${what} must be an array of origins such as "https://ops.example.com" (scheme and host, no path)`,
      );
  },
};

/** An error's class name: its message could hold a driver's row values. */
function errorName(e: unknown): string {
  return e instanceof Error ? e.name : typeof e;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest();

// Every answer carries the security headers; a string body is HTML, an
// object JSON, and neither is cached.
function respond(
  status: number,
  body: string | object | null,
  headers: Record<string, string> = {},
): Response {
  const html = typeof body === "string";
  const typed = body === null ? {} : {
    "content-type": `${html ? "text/html" : "application/json"}; charset=utf-8`,
    "cache-control": "no-store",
  };
  return new Response(html || body === null ? body : JSON.stringify(body), {
    status,
    headers: {
      "content-security-policy":
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "same-origin",
      ...typed,
      ...headers,
    },
  });
}

// The body of a POST of the content type `type`, or the refusal to answer.
async function readBody(
  request: Request,
  type: RegExp,
  refusal: string | object,
): Promise<string | Response> {
  if (!type.test(request.headers.get("content-type") ?? "")) {
    return respond(415, refusal);
  }
  const tooLarge = () => respond(413, { error: "body too large" });
  if (Number(request.headers.get("content-length")) > MAX_BODY_BYTES) {
    return tooLarge();
  }
  // Counts the bytes as they arrive (a chunked body has no length): leaving
  // the loop cancels the stream, so no more than the limit is read.
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  for await (const chunk of request.body ?? []) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) return tooLarge();
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}
