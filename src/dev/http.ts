// The example's HTTP API on Deno.serve and URLPattern. Every answer is JSON;
// nothing a client sends yields a 500 or a stack trace.
import { getLogger } from "@logtape/logtape";
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import {
  EmailTakenError,
  isUserId,
  parseRegistration,
  type User,
  ValidationError,
} from "./user.ts";

const logger = getLogger(["dev", "http"]);

/** What a registration answers: the user, and a note when the email is late. */
export interface RegistrationResult {
  readonly user: User;
  /**
   * Set when the user is saved but the welcome email could not be queued
   * yet (the jobs database did not answer); says whether it is sent later.
   */
  readonly welcomeEmail?: string;
}

/** What the routes need from the application. */
export interface UserService {
  register(
    registration: { email: string; name: string },
  ): Promise<RegistrationResult>;
  find(id: string): Promise<User | null>;
  health(): Promise<{ app: boolean; jobs: boolean }>;
  stats(): Promise<Record<string, number>>;
}

/** Options of {@linkcode createHandler}. */
export interface HandlerOptions {
  /**
   * How long a request body may take to arrive; after that the answer is
   * 408 and the connection is closed.
   *
   * @default {10000}
   */
  readonly bodyTimeoutMs?: number;
  /**
   * Answers the /admin/ routes (src/dev/admin.ts), or `undefined` for
   * every other path.
   */
  readonly admin?: (
    request: Request,
    url: URL,
  ) => Promise<Response | undefined>;
}

const MAX_BODY_BYTES = 16 * 1024;
const USER = new URLPattern({ pathname: "/users/:id" });
// Methods logged by name; anything else is logged as "OTHER" (a method is
// client text, and the log holds no client text).
const METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "OPTIONS",
]);

function json(status: number, body: unknown, headers?: HeadersInit): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function error(
  status: number,
  message: string,
  field?: string,
  headers?: HeadersInit,
): Response {
  return json(
    status,
    field === undefined ? { error: message } : { error: message, field },
    headers,
  );
}

// An unread body is left behind: close the connection rather than read it.
const CLOSE = { connection: "close" };

/** application/json or application/*+json, UTF-8 (the JSON default). */
function isJsonMediaType(contentType: string): boolean {
  const [type = "", ...params] = contentType.split(";");
  const media = type.trim().toLowerCase();
  if (
    media !== "application/json" && !/^application\/[^/]+\+json$/.test(media)
  ) {
    return false;
  }
  return params.every((param) => {
    const [name = "", value = ""] = param.split("=");
    return name.trim().toLowerCase() !== "charset" ||
      /^"?utf-8"?$/i.test(value.trim());
  });
}

/** The body's bytes within the size and time bounds, or the error answer. */
async function readBody(
  request: Request,
  timeoutMs: number,
): Promise<Uint8Array | Response> {
  const tooLarge = () =>
    error(
      413,
      `request body must be at most ${MAX_BODY_BYTES} bytes`,
      undefined,
      CLOSE,
    );
  if (Number(request.headers.get("content-length") ?? "0") > MAX_BODY_BYTES) {
    return tooLarge();
  }
  if (request.body === null) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), timeoutMs);
  });
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), late]);
      if (next === "late") {
        reader.cancel().catch(() => {});
        return error(
          408,
          `request body must arrive within ${timeoutMs} ms`,
          undefined,
          CLOSE,
        );
      }
      if (next.done) break;
      size += next.value.length;
      if (size > MAX_BODY_BYTES) {
        reader.cancel().catch(() => {});
        return tooLarge();
      }
      chunks.push(next.value);
    }
  } catch {
    return error(
      400,
      "request body ended before all of it arrived (shorter than its content-length?); send it again",
      undefined,
      CLOSE,
    );
  } finally {
    clearTimeout(timer);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

async function readJsonObject(
  request: Request,
  timeoutMs: number,
): Promise<Record<string, unknown> | Response> {
  const contentType = request.headers.get("content-type");
  // No content type is taken as JSON; a declared other type is refused.
  if (contentType !== null && !isJsonMediaType(contentType)) {
    return error(
      415,
      "request body must be JSON: send content-type: application/json",
      undefined,
      { "accept-post": "application/json", ...CLOSE },
    );
  }
  const coding = request.headers.get("content-encoding");
  if (coding !== null && coding.trim().toLowerCase() !== "identity") {
    return error(
      415,
      "request body must not be encoded: send it without content-encoding",
      undefined,
      { "accept-encoding": "identity", ...CLOSE },
    );
  }
  const bytes = await readBody(request, timeoutMs);
  if (bytes instanceof Response) return bytes;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return error(400, "request body must be UTF-8 JSON");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return error(
      400,
      'request body must be JSON, for example {"email": "ada@example.org", "name": "Ada"}',
    );
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return error(400, "request body must be a JSON object with email and name");
  }
  return body as Record<string, unknown>;
}

/** Which route a request is for: its pattern, for the log, never its path. */
function routeOf(url: URL): string {
  const path = url.pathname;
  if (path === "/users" || path === "/health" || path === "/stats") return path;
  if (USER.test(url)) return "/users/:id";
  if (path === "/admin" || path.startsWith("/admin/")) return "/admin/*";
  if (path === "/dashboard" || path.startsWith("/dashboard/")) {
    return "/dashboard/*";
  }
  return "(no route)";
}

/** GET and HEAD are read the same way; HEAD gets the headers only. */
function isRead(method: string): boolean {
  return method === "GET" || method === "HEAD";
}

async function route(
  request: Request,
  url: URL,
  users: UserService,
  bodyTimeoutMs: number,
): Promise<Response> {
  const path = url.pathname;

  if (path === "/users") {
    if (request.method !== "POST") {
      return json(405, { error: "use POST /users to register a user" }, {
        allow: "POST",
      });
    }
    const body = await readJsonObject(request, bodyTimeoutMs);
    if (body instanceof Response) return body;
    let registration;
    try {
      registration = parseRegistration(body);
    } catch (e) {
      if (e instanceof ValidationError) return error(422, e.message, e.field);
      throw e;
    }
    try {
      const { user, welcomeEmail } = await users.register(registration);
      return json(
        201,
        welcomeEmail === undefined
          ? user.toJSON()
          : { ...user.toJSON(), welcomeEmail },
        { location: `/users/${user.id}` },
      );
    } catch (e) {
      if (e instanceof EmailTakenError) return error(409, e.message, "email");
      throw e;
    }
  }

  const match = USER.exec(url);
  if (match) {
    if (!isRead(request.method)) {
      return json(405, { error: "use GET /users/:id to read a user" }, {
        allow: "GET, HEAD",
      });
    }
    const id = match.pathname.groups.id ?? "";
    if (!isUserId(id)) {
      return error(
        400,
        "user id must be a UUID such as 0190c6e2-7a4b-4c1e-9a51-2f1b3c4d5e6f",
      );
    }
    const user = await users.find(id.toLowerCase());
    return user === null
      ? error(404, "no user has this id")
      : json(200, user.toJSON());
  }

  if (path === "/health") {
    if (!isRead(request.method)) {
      return json(405, { error: "use GET /health" }, { allow: "GET, HEAD" });
    }
    const status = await users.health();
    const ok = status.app && status.jobs;
    return json(ok ? 200 : 503, {
      status: ok ? "ok" : "unavailable",
      databases: {
        app: status.app ? "ok" : "down",
        jobs: status.jobs ? "ok" : "down",
      },
    });
  }

  if (path === "/stats") {
    if (!isRead(request.method)) {
      return json(405, { error: "use GET /stats" }, { allow: "GET, HEAD" });
    }
    return json(200, await users.stats());
  }

  return error(
    404,
    `no route for ${request.method} ${path}; try POST /users, GET /users/:id, GET /health or GET /stats`,
  );
}

/**
 * Makes the request handler: routes, JSON errors and a log line per request
 * (method, route pattern, status, duration: never the path or the query).
 */
export function createHandler(
  users: UserService,
  options: HandlerOptions = {},
): (request: Request) => Promise<Response> {
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 10_000;
  const handle = async (request: Request, url: URL): Promise<Response> => {
    const started = performance.now();
    let response: Response;
    try {
      response = await options.admin?.(request, url) ??
        await route(request, url, users, bodyTimeoutMs);
    } catch (e) {
      // A fault of ours (a database down, say), not of the request.
      // Name and message only: a driver error's other fields (a row's
      // values, say) could carry personal data.
      logger.error("Request failed: {error}", {
        error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
      });
      response = error(503, "the service cannot answer right now; try again");
    }
    logger.info("{method} {route} {status} {durationMs} ms", {
      method: METHODS.has(request.method) ? request.method : "OTHER",
      route: routeOf(url),
      status: response.status,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    });
    if (request.method === "HEAD") {
      // The headers GET would send, content-length included; no body.
      const headers = new Headers(response.headers);
      headers.set(
        "content-length",
        String((await response.arrayBuffer()).byteLength),
      );
      return new Response(null, { status: response.status, headers });
    }
    return response;
  };
  return (request) => traced(request, handle);
}

const tracer = trace.getTracer("aftercommit-dev");
const headerGetter = {
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
  keys: (headers: Headers) => [...headers.keys()],
};

/**
 * Runs `handle` in the request's SERVER span (a no-op without an OTel SDK),
 * so the unit of work's spans are its children: Deno's built-in OTel traces
 * node:http requests (serve.ts) but does not make that span active here.
 * The name and attributes hold the route pattern, never the path.
 */
function traced(
  request: Request,
  handle: (request: Request, url: URL) => Promise<Response>,
): Promise<Response> {
  const url = new URL(request.url);
  const method = METHODS.has(request.method) ? request.method : "_OTHER";
  const route = routeOf(url);
  const known = route !== "(no route)";
  const parent = propagation.extract(
    context.active(),
    request.headers,
    headerGetter,
  );
  return tracer.startActiveSpan(
    known ? `${method} ${route}` : method,
    {
      kind: SpanKind.SERVER,
      attributes: {
        "http.request.method": method,
        ...(known ? { "http.route": route } : {}),
      },
    },
    parent,
    async (span) => {
      try {
        const response = await handle(request, url);
        span.setAttribute("http.response.status_code", response.status);
        if (response.status >= 500) {
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        return response;
      } finally {
        span.end();
      }
    },
  );
}
