// The dev server's admin endpoints: the outbox's counts and parked events,
// pg-boss dead letters, and their repairs (requeue, purge, retry, delete).
// Off unless ADMIN_TOKEN is set; every request then needs
// `Authorization: Bearer <token>`, compared in constant time.
//
//   GET  /admin/outbox                     counts
//   GET  /admin/outbox/parked?type=&limit= parked events (no event fields)
//   POST /admin/outbox/requeue             {"ids": [...]} | {"type": "..."} | {"all": true}
//   POST /admin/outbox/purge               same selection
//   GET  /admin/dead-letters?queue=&limit= dead letters (no job data)
//   POST /admin/dead-letters/retry         {"ids": [...]} | {"queue": "..."} | {"all": true}
//   POST /admin/dead-letters/delete        same selection
//
// A POST body may add "dryRun": true to get the count without changing
// anything; every change answers with how many rows it changed.
import { getLogger } from "@logtape/logtape";
import { timingSafeEqual } from "node:crypto";
import type { OutboxAdmin, ParkedSelection } from "../adapters/postgres/mod.ts";
import type {
  DeadLetterSelection,
  PgBossJobQueue,
} from "../adapters/pg-boss/mod.ts";

const logger = getLogger(["dev", "admin"]);

/** What the admin endpoints act on. */
export interface AdminTargets {
  /** The token every request must carry; `undefined` turns them off. */
  readonly token: string | undefined;
  /** The outbox, or `undefined` when OUTBOX=false. */
  readonly outbox: OutboxAdmin | undefined;
  /** The job queue, for its dead letters. */
  readonly jobs: Pick<
    PgBossJobQueue,
    | "deadLetters"
    | "countDeadLetters"
    | "retryDeadLetters"
    | "deleteDeadLetters"
  >;
}

/** Answers an /admin/ request, or `undefined` for any other path. */
export type AdminHandler = (
  request: Request,
  url: URL,
) => Promise<Response | undefined>;

const MAX_BODY_BYTES = 1024 * 1024;

function json(status: number, body: unknown, headers?: HeadersInit): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
}

/** Makes the admin handler (off, answering 404, without a token). */
export function createAdminHandler(targets: AdminTargets): AdminHandler {
  const token = targets.token;
  // Both sides hashed to 32 bytes: the comparison takes the same time
  // whatever the length or content of the presented token.
  const expected = token === undefined || token === ""
    ? undefined
    : digest(token);
  return async (request, url) => {
    const path = url.pathname;
    if (path !== "/admin" && !path.startsWith("/admin/")) return undefined;
    if (expected === undefined) {
      return json(404, {
        error: "admin endpoints are off; set ADMIN_TOKEN to turn them on",
      });
    }
    const header = request.headers.get("authorization") ?? "";
    const presented = header.startsWith("Bearer ") ? header.slice(7) : "";
    if (!timingSafeEqual(await digest(presented), await expected)) {
      return json(401, {
        error: "admin endpoints need Authorization: Bearer <ADMIN_TOKEN>",
      }, { "www-authenticate": 'Bearer realm="admin"' });
    }
    try {
      return await route(request, url, targets);
    } catch (e) {
      // The API's argument checks: a bad selection or limit.
      if (e instanceof TypeError || e instanceof RangeError) {
        return json(400, { error: e.message });
      }
      throw e;
    }
  };
}

async function route(
  request: Request,
  url: URL,
  targets: AdminTargets,
): Promise<Response> {
  const path = url.pathname.replace(/\/+$/, "");
  const get = request.method === "GET" || request.method === "HEAD";
  const post = request.method === "POST";
  const limit = parseLimit(url.searchParams.get("limit"));
  if (limit instanceof Response) return limit;

  if (path.startsWith("/admin/outbox")) {
    const outbox = targets.outbox;
    if (outbox === undefined) {
      return json(404, { error: "the outbox is off (OUTBOX=false)" });
    }
    if (path === "/admin/outbox" && get) return json(200, await outbox.stats());
    if (path === "/admin/outbox/parked" && get) {
      const type = url.searchParams.get("type");
      return json(
        200,
        await outbox.listParked({
          ...(type === null ? {} : { type }),
          limit,
        }),
      );
    }
    if (
      (path === "/admin/outbox/requeue" || path === "/admin/outbox/purge") &&
      post
    ) {
      const body = await readBody(request);
      if (body instanceof Response) return body;
      const { dryRun, ...selection } = body;
      const count = await outbox.countParked(selection as ParkedSelection);
      if (dryRun === true) return json(200, { matched: count });
      const requeue = path.endsWith("requeue");
      const changed = requeue
        ? await outbox.requeueParked(selection as ParkedSelection)
        : await outbox.purgeParked(selection as ParkedSelection);
      logger.info("Admin {action} of {count} parked outbox events", {
        action: requeue ? "requeue" : "purge",
        count: changed,
      });
      return json(200, requeue ? { requeued: changed } : { purged: changed });
    }
  }

  if (path.startsWith("/admin/dead-letters")) {
    const jobs = targets.jobs;
    if (path === "/admin/dead-letters" && get) {
      const queue = url.searchParams.get("queue");
      return json(
        200,
        await jobs.deadLetters({
          ...(queue === null ? {} : { queue }),
          limit,
        }),
      );
    }
    if (
      (path === "/admin/dead-letters/retry" ||
        path === "/admin/dead-letters/delete") && post
    ) {
      const body = await readBody(request);
      if (body instanceof Response) return body;
      const { dryRun, ...selection } = body;
      const count = await jobs.countDeadLetters(
        selection as DeadLetterSelection,
      );
      if (dryRun === true) return json(200, { matched: count });
      const retry = path.endsWith("retry");
      const changed = retry
        ? await jobs.retryDeadLetters(selection as DeadLetterSelection)
        : await jobs.deleteDeadLetters(selection as DeadLetterSelection);
      logger.info("Admin {action} of {count} dead letters", {
        action: retry ? "retry" : "delete",
        count: changed,
      });
      return json(200, retry ? { retried: changed } : { deleted: changed });
    }
  }

  return json(404, {
    error:
      "no admin route; try GET /admin/outbox, GET /admin/outbox/parked, POST /admin/outbox/requeue or /purge, GET /admin/dead-letters, POST /admin/dead-letters/retry or /delete",
  });
}

function parseLimit(text: string | null): number | Response {
  if (text === null) return 100;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 10_000) {
    return json(400, { error: "limit must be an integer from 1 to 10000" });
  }
  return n;
}

async function readBody(
  request: Request,
): Promise<Record<string, unknown> | Response> {
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) {
    return json(413, { error: "request body is too large" });
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return json(400, {
      error:
        'request body must be JSON such as {"ids": ["…"]}, {"type": "user.registered"} or {"all": true}',
    });
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return json(400, { error: "request body must be a JSON object" });
  }
  const { dryRun } = body as { dryRun?: unknown };
  if (dryRun !== undefined && typeof dryRun !== "boolean") {
    return json(400, { error: "dryRun must be true or false" });
  }
  return body as Record<string, unknown>;
}
