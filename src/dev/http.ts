// The example's HTTP API on Deno.serve and URLPattern. Every answer is JSON;
// nothing a client sends yields a 500 or a stack trace.
import { getLogger } from "@logtape/logtape";
import {
  EmailTakenError,
  isUserId,
  parseRegistration,
  type User,
  ValidationError,
} from "./user.ts";

const logger = getLogger(["dev", "http"]);

/** What the routes need from the application. */
export interface UserService {
  register(registration: { email: string; name: string }): Promise<User>;
  find(id: string): Promise<User | null>;
  health(): Promise<{ app: boolean; jobs: boolean }>;
  stats(): Promise<Record<string, number>>;
}

const MAX_BODY_BYTES = 16 * 1024;
const USER = new URLPattern({ pathname: "/users/:id" });

function json(status: number, body: unknown, headers?: HeadersInit): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function error(status: number, message: string, field?: string): Response {
  return json(
    status,
    field === undefined ? { error: message } : { error: message, field },
  );
}

async function readJsonObject(
  request: Request,
): Promise<Record<string, unknown> | Response> {
  const length = Number(request.headers.get("content-length") ?? "0");
  if (length > MAX_BODY_BYTES) {
    return error(413, `request body must be at most ${MAX_BODY_BYTES} bytes`);
  }
  let text: string;
  try {
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.length > MAX_BODY_BYTES) {
      return error(413, `request body must be at most ${MAX_BODY_BYTES} bytes`);
    }
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

async function route(request: Request, users: UserService): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;

  if (path === "/users") {
    if (request.method !== "POST") {
      return json(405, { error: "use POST /users to register a user" }, {
        allow: "POST",
      });
    }
    const body = await readJsonObject(request);
    if (body instanceof Response) return body;
    let registration;
    try {
      registration = parseRegistration(body);
    } catch (e) {
      if (e instanceof ValidationError) return error(422, e.message, e.field);
      throw e;
    }
    try {
      const user = await users.register(registration);
      return json(201, user.toJSON(), { location: `/users/${user.id}` });
    } catch (e) {
      if (e instanceof EmailTakenError) return error(409, e.message, "email");
      throw e;
    }
  }

  const match = USER.exec(url);
  if (match) {
    if (request.method !== "GET") {
      return json(405, { error: "use GET /users/:id to read a user" }, {
        allow: "GET",
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
    if (request.method !== "GET") {
      return json(405, { error: "use GET /health" }, { allow: "GET" });
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
    if (request.method !== "GET") {
      return json(405, { error: "use GET /stats" }, { allow: "GET" });
    }
    return json(200, await users.stats());
  }

  return error(
    404,
    `no route for ${request.method} ${path}; try POST /users, GET /users/:id, GET /health or GET /stats`,
  );
}

/** Makes the request handler: routes, JSON errors and a log line per request. */
export function createHandler(
  users: UserService,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const started = performance.now();
    let response: Response;
    try {
      response = await route(request, users);
    } catch (e) {
      // A fault of ours (a database down, say), not of the request.
      // Name and message only: a driver error's other fields (a row's
      // values, say) could carry personal data.
      logger.error("Request failed: {error}", {
        error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
      });
      response = error(503, "the service cannot answer right now; try again");
    }
    logger.info("{method} {path} {status} {durationMs} ms", {
      method: request.method,
      path: new URL(request.url).pathname,
      status: response.status,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    });
    return response;
  };
}
