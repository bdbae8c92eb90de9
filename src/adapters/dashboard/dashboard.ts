// The dashboard's request handler: sign-in, the snapshot the page polls and
// the two repairs. The page itself is in _assets.ts.
import { getLogger } from "@logtape/logtape";
import { timingSafeEqual } from "node:crypto";
import type {
  OutboxAdmin,
  OutboxStats,
  ParkedSelection,
} from "../postgres/mod.ts";
import type {
  DeadLetterSelection,
  PgBossJobQueue,
  QueueCounts,
} from "../pg-boss/mod.ts";
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
   * `Authorization: Bearer <token>`). Required; `undefined` serves the
   * dashboard to anyone who reaches it.
   */
  readonly token: string | undefined;
  /** The outbox to show and repair. @default {undefined (no panel)} */
  readonly outbox?: DashboardOutbox;
  /** The job queue to show and repair. @default {undefined (no panel)} */
  readonly jobs?: DashboardJobs;
  /** The path every URL it serves starts with. @default {"/dashboard"} */
  readonly basePath?: string;
  /** Seconds between two refreshes (1 to 60). @default {2} */
  readonly refreshSeconds?: number;
  /** Seconds of history the charts show (60 to 3600). @default {300} */
  readonly historySeconds?: number;
  /** Most parked events and dead letters listed (1 to 1,000). @default {50} */
  readonly listLimit?: number;
  /** Seconds a sign-in lasts (60 to 604,800). @default {43200} */
  readonly sessionSeconds?: number;
  /**
   * Origins (`https://ops.example.com`) allowed to POST besides the
   * request's own host, for a proxy that rewrites `Host`. @default {[]}
   */
  readonly allowedOrigins?: readonly string[];
}

/** A request handler, as `Deno.serve` takes it. */
export type DashboardHandler = (request: Request) => Promise<Response>;

// One point of the charts (`t`: milliseconds since the epoch).
type Sample =
  & { t: number }
  & Record<
    "eventsPerSecond" | "jobsPerSecond" | "p50Ms" | "p99Ms",
    number | null
  >;

const COOKIE = "aftercommit_dashboard";
const SESSION = /(?:^|;)\s*aftercommit_dashboard=([^;]*)/;
// What a parked event and a dead letter show (payload and data when asked).
const PARKED = ["id", "type", "attempts", "lastError", "payload"];
const DEAD = ["id", "queue", "attempts", "error", "data"];
const MAX_BODY_BYTES = 64 * 1024;

/**
 * Makes the dashboard's request handler: a live page of the flow (events
 * and jobs per second, commit → job start latency), the outbox and the
 * jobs, with requeue and retry after a confirmation. Requests outside
 * `basePath` get a 404. Fields stay hidden unless the operator asks; POSTs
 * must come from the dashboard's own origin; logs never name the token or
 * any event or job data.
 */
export function dashboard(options: DashboardOptions): DashboardHandler {
  const config = readConfig(options);
  const { basePath: base, token, outbox, jobs } = config;
  const secret = token === undefined ? undefined : crypto.subtle.importKey(
    "raw",
    encode(token),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const bearer = token === undefined ? undefined : digest(token);
  const isToken = async (presented: string) =>
    timingSafeEqual(await digest(presented), await bearer!);
  const history: Sample[] = [];
  let previous: { t: number; done: number | null } | undefined;
  let sampling: Promise<void> | undefined;
  let latest: {
    outbox: OutboxStats | null;
    queues: readonly QueueCounts[] | null;
  } = { outbox: null, queues: null };

  async function isSignedIn(request: Request): Promise<boolean> {
    if (secret === undefined) return true;
    const header = request.headers.get("authorization");
    if (header !== null) {
      return isToken(header.startsWith("Bearer ") ? header.slice(7) : "");
    }
    const cookie = request.headers.get("cookie")?.match(SESSION)?.[1]?.trim();
    const [, expires, signature] = cookie?.match(/^(\d+)\.([^.]+)/) ?? [];
    if (!expires || !signature || Number(expires) * 1000 < Date.now()) {
      return false;
    }
    const expected = encode(await sign(await secret, expires));
    const given = encode(signature);
    return given.length === expected.length &&
      timingSafeEqual(given, expected);
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
      // Not a browser (a browser sends Origin with every POST): only a
      // client that presents the token itself is let through.
      return request.headers.has("authorization") ||
        token === undefined && site === null;
    }
    if (config.allowedOrigins.includes(origin)) return true;
    return URL.parse(origin)?.host === url.host;
  }

  async function sample(): Promise<void> {
    const now = Date.now();
    const windowSeconds = previous === undefined
      ? config.refreshSeconds
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
    const since = now - config.historySeconds * 1000;
    history.splice(0, history.findIndex((point) => point.t >= since));
    latest = { outbox: counts ?? null, queues: queue?.queues ?? null };
  }

  // One sample per refresh interval, however many pages are open; no timer
  // runs while nobody looks.
  async function fresh(): Promise<void> {
    const last = history.at(-1);
    if (last && Date.now() - last.t < config.refreshSeconds * 800) return;
    sampling ??= sample().finally(() => sampling = undefined);
    await sampling;
  }

  async function snapshot(fields: boolean): Promise<unknown> {
    await fresh();
    const problems: string[] = [];
    const listed = async (
      rows: Promise<{ ageSeconds: number }[]> | undefined,
      keys: readonly string[],
      what: string,
    ) => {
      try {
        return (await rows ?? []).map((row) => shown(row, keys));
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
      listed(outbox?.listParked(list), PARKED, "The outbox's parked events"),
      listed(jobs?.deadLetters(list), DEAD, "The dead letters"),
    ]);
    if (outbox !== undefined && latest.outbox === null) {
      problems.unshift("The outbox's counts could not be read.");
    }
    if (jobs !== undefined && latest.queues === null) {
      problems.unshift("The job queue's counts could not be read.");
    }
    return {
      at: new Date().toISOString(),
      historySeconds: config.historySeconds,
      sources: { outbox: outbox !== undefined, jobs: jobs !== undefined },
      history,
      outbox: latest.outbox,
      parkedEvents,
      queues: latest.queues ?? [],
      deadLetters,
      unavailable: problems,
    };
  }

  // Requeue parked events or retry dead letters: count first (a dry run
  // stops there), then act.
  async function repair(request: Request, requeue: boolean): Promise<Response> {
    const body = await readJson(request);
    if (body instanceof Response) return body;
    const { dryRun, ...selection } = body;
    if (dryRun !== undefined && typeof dryRun !== "boolean") {
      return json(400, { error: "dryRun must be true or false" });
    }
    const parked = selection as ParkedSelection;
    const dead = selection as DeadLetterSelection;
    const source = requeue
      ? outbox && {
        count: () => outbox.countParked(parked),
        act: () => outbox.requeueParked(parked),
      }
      : jobs && {
        count: () => jobs.countDeadLetters(dead),
        act: () => jobs.retryDeadLetters(dead),
      };
    if (source === undefined) {
      return json(404, {
        error: `this dashboard has no ${requeue ? "outbox" : "job queue"}`,
      });
    }
    try {
      const matched = await source.count();
      if (dryRun === true) return json(200, { matched });
      const count = await source.act();
      logger.info(
        requeue
          ? "Dashboard requeued {count} parked outbox events"
          : "Dashboard retried {count} dead letters",
        { count },
      );
      return json(200, requeue ? { requeued: count } : { retried: count });
    } catch (e) {
      // The repair API's own checks: a bad selection changes nothing.
      if (e instanceof TypeError || e instanceof RangeError) {
        return json(400, { error: e.message });
      }
      throw e;
    }
  }

  async function login(request: Request, url: URL): Promise<Response> {
    if (secret === undefined) return redirect(base);
    const type = request.headers.get("content-type") ?? "";
    if (!type.startsWith("application/x-www-form-urlencoded")) {
      return html(415, loginPage(base, true));
    }
    const text = await readText(request);
    if (text === undefined) return json(413, { error: "body too large" });
    if (!await isToken(new URLSearchParams(text).get("token") ?? "")) {
      logger.warn("Dashboard sign-in refused: wrong token");
      return html(401, loginPage(base, true));
    }
    const { sessionSeconds } = config;
    const expires = String(Math.floor(Date.now() / 1000) + sessionSeconds);
    const signature = await sign(await secret, expires);
    const secure = url.protocol === "https:" ? "; Secure" : "";
    return redirect(
      base,
      `${COOKIE}=${expires}.${signature}; Path=${base}; Max-Age=${sessionSeconds}; HttpOnly; SameSite=Strict${secure}`,
    );
  }

  async function route(request: Request, url: URL): Promise<Response> {
    const path = url.pathname.slice(base.length).replace(/\/+$/, "");
    const { method } = request;
    const read = method === "GET" || method === "HEAD";
    const asset = ASSETS.get(path);
    if (asset !== undefined && read) {
      return respond(200, asset[0], {
        "content-type": `${asset[1]}; charset=utf-8`,
        "cache-control": "no-cache",
      });
    }
    if ((path === "/login" || path === "/logout") && method === "POST") {
      if (!fromThisSite(request, url)) return forbidden();
      if (path === "/login") return login(request, url);
      return redirect(
        base,
        `${COOKIE}=; Path=${base}; Max-Age=0; HttpOnly; SameSite=Strict`,
      );
    }
    const signedIn = await isSignedIn(request);
    if (path === "" && read) {
      if (!signedIn) return html(401, loginPage(base, false));
      const { refreshSeconds } = config;
      return html(
        200,
        dashboardPage(base, refreshSeconds, token !== undefined),
      );
    }
    if (path.startsWith("/api/") && !signedIn) {
      return json(401, {
        error:
          "sign in at the dashboard, or send Authorization: Bearer <admin token>",
      }, { "www-authenticate": 'Bearer realm="dashboard"' });
    }
    if (path === "/api/snapshot" && read) {
      return json(200, await snapshot(url.searchParams.get("fields") === "1"));
    }
    const requeue = path === "/api/outbox/requeue";
    if ((requeue || path === "/api/dead-letters/retry") && method === "POST") {
      if (!fromThisSite(request, url)) return forbidden();
      return repair(request, requeue);
    }
    return json(404, {
      error: `no dashboard route for ${method} ${
        path || "/"
      }; open ${base} in a browser`,
    });
  }

  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== base && !url.pathname.startsWith(base + "/")) {
      return json(404, { error: `the dashboard is served under ${base}` });
    }
    try {
      return await route(request, url);
    } catch (e) {
      logger.error("Dashboard request failed: {error}", {
        error: errorName(e),
      });
      return json(503, { error: "the dashboard cannot answer right now" });
    }
  };
}

// A source must have the methods the dashboard calls.
function source<T>(methods: readonly string[], fits: string): Rule<T> {
  return (value, what, action) => {
    const missing = methods.filter((m) =>
      typeof (value as Record<string, unknown> | null)?.[m] !== "function"
    );
    if (value !== undefined && missing.length > 0) {
      fail(action, `${what} lacks ${missing.join(", ")}; pass ${fits}`);
    }
    return value as T;
  };
}

const OPTIONS = {
  token: text(),
  outbox: source<DashboardOutbox | undefined>(
    ["stats", "listParked", "countParked", "requeueParked"],
    "an OutboxAdmin",
  ),
  jobs: source<DashboardJobs | undefined>(
    ["stats", "deadLetters", "countDeadLetters", "retryDeadLetters"],
    "a PgBossJobQueue",
  ),
  basePath: matches(
    /^\/[A-Za-z0-9._~\-/]*[^/]$/,
    'a path such as "/dashboard" (starting with "/", not ending with it)',
  ),
  refreshSeconds: integer(1, 60, 2),
  historySeconds: integer(60, 3600, 300),
  listLimit: integer(1, 1000, 50),
  sessionSeconds: integer(60, 604_800, 43_200),
  allowedOrigins: (value: unknown, what: string, action: string) => {
    if (value === undefined) return [];
    if (
      !Array.isArray(value) ||
      !value.every((o) => /^https?:\/\/[^/]+$/.test(String(o)))
    ) {
      fail(
        action,
        `${what} must be an array of origins such as "https://ops.example.com" (scheme and host, no path)`,
      );
    }
    return value as readonly string[];
  },
};

function readConfig(options: DashboardOptions) {
  const action = "create dashboard";
  assertObject(options, "options", action);
  if (!("token" in (options ?? {}))) {
    fail(
      action,
      "options.token is required: pass the admin token, or token: undefined to serve the dashboard without sign-in",
    );
  }
  const config = readOptions(options, OPTIONS, action);
  return { ...config, basePath: config.basePath ?? "/dashboard" };
}

// A listed row with only the fields it may show, its age in whole seconds.
function shown(row: { ageSeconds: number }, keys: readonly string[]) {
  const fields = keys.filter((k) => k in row)
    .map((k) => [k, (row as Record<string, unknown>)[k]]);
  return {
    ...Object.fromEntries(fields),
    ageSeconds: Math.round(row.ageSeconds),
  };
}

function unavailable(source: string): (e: unknown) => undefined {
  return (e) => {
    logger.warn("Dashboard could not read the {source}: {error}", {
      source,
      error: errorName(e),
    });
    return undefined;
  };
}

/** An error's class name: its message could hold a driver's row values. */
function errorName(e: unknown): string {
  return e instanceof Error ? e.name : typeof e;
}

const ASSETS = new Map<string, [string, string]>([
  ["/app.css", [STYLE, "text/css"]],
  ["/app.js", [SCRIPT, "text/javascript"]],
]);

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin",
};

function respond(
  status: number,
  body: string | null,
  headers: Record<string, string>,
): Response {
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, ...headers },
  });
}

function json(status: number, body: unknown, headers = {}): Response {
  return respond(status, JSON.stringify(body), {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    ...headers,
  });
}

function html(status: number, body: string): Response {
  return respond(status, body, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
  });
}

function redirect(location: string, cookie?: string): Response {
  const setCookie = cookie === undefined ? {} : { "set-cookie": cookie };
  return respond(303, null, { location, ...setCookie });
}

function forbidden(): Response {
  return json(403, {
    error: "cross-site request refused: send it from the dashboard's own page",
  });
}

async function readText(request: Request): Promise<string | undefined> {
  if (Number(request.headers.get("content-length") ?? "0") > MAX_BODY_BYTES) {
    return undefined;
  }
  const text = await request.text();
  return text.length > MAX_BODY_BYTES ? undefined : text;
}

async function readJson(
  request: Request,
): Promise<Record<string, unknown> | Response> {
  const type = request.headers.get("content-type") ?? "";
  // A form on another site cannot send JSON without a preflight.
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    return json(415, {
      error: "send the selection as JSON (content-type: application/json)",
    });
  }
  const text = await readText(request);
  if (text === undefined) return json(413, { error: "body too large" });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON: answered below */ }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return json(400, {
      error:
        'the body must be a JSON object such as {"ids": ["…"]}, {"type": "user.registered"} or {"all": true}',
    });
  }
  return body as Record<string, unknown>;
}

const encode = (text: string) => new TextEncoder().encode(text);

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encode(text)));
}

// The session cookie is "<expiry>.<HMAC-SHA256(token, expiry)>": any process
// with the same token can check it, and it does not reveal the token.
async function sign(key: CryptoKey, expires: string): Promise<string> {
  const message = encode(`aftercommit-dashboard-session:${expires}`);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, message))
    .toBase64({ alphabet: "base64url", omitPadding: true });
}
