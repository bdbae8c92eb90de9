// Runs the real dev server (`src/dev/main.ts`) as a subprocess on a free
// port, against embedded databases in a temporary folder, or against fresh
// databases on the servers named by TEST_DATABASE_URL and
// TEST_JOB_QUEUE_DATABASE_URL.
import postgres from "postgres";
import { createServerDatabase } from "./server_database.ts";
import { waitUntil } from "./poll.ts";

const MAIN = new URL("../../src/dev/main.ts", import.meta.url);
const ROOT = new URL("../../", import.meta.url);

/** Where a test file's dev servers keep their data. */
export interface DevDatabases extends AsyncDisposable {
  readonly backend: "embedded" | "server";
  /** Environment variables that point a dev server at these databases. */
  readonly env: Record<string, string>;
  /** A client on the application database (server backend only). */
  readonly appSql: postgres.Sql | undefined;
}

function serverUrl(name: string): string | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

/** Databases for one test file: a temp folder, or two fresh server databases. */
export async function openDevDatabases(): Promise<DevDatabases> {
  const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-dev-" });
  const appServer = serverUrl("TEST_DATABASE_URL");
  const jobsServer = serverUrl("TEST_JOB_QUEUE_DATABASE_URL") ?? appServer;
  if (appServer === undefined || jobsServer === undefined) {
    return {
      backend: "embedded",
      env: { DATA_DIR: dataDir },
      appSql: undefined,
      [Symbol.asyncDispose]: () => Deno.remove(dataDir, { recursive: true }),
    };
  }
  const app = await createServerDatabase(appServer, "aftercommit_dev_app");
  const jobs = await createServerDatabase(jobsServer, "aftercommit_dev_jobs");
  const appSql = postgres(app.url, { max: 2, onnotice: () => {} });
  return {
    backend: "server",
    env: {
      DATA_DIR: dataDir,
      DATABASE_URL: app.url,
      JOB_QUEUE_DATABASE_URL: jobs.url,
    },
    appSql,
    async [Symbol.asyncDispose]() {
      await appSql.end();
      await app.drop();
      await jobs.drop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** A running dev server. */
export interface DevServer extends AsyncDisposable {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** Resolves once `pattern` shows in the output. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** The process's exit status, once it ended. */
  readonly exited: Promise<Deno.CommandStatus>;
}

/** Spawns `src/dev/main.ts` on PORT=0, its outputs piped, no database URL set. */
function spawnDevServer(
  env: Record<string, string>,
  args: string[] = [],
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--frozen", MAIN.pathname, ...args],
    cwd: ROOT.pathname,
    env: {
      PORT: "0",
      NO_COLOR: "1",
      DATABASE_URL: "",
      JOB_QUEUE_DATABASE_URL: "",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Starts `src/dev/main.ts` with PORT=0 and waits for its "Listening on" line.
 *
 * @param env Extra environment variables (DATA_DIR, URLs, …).
 * @param args Command-line arguments (`--fresh`).
 */
export async function startDevServer(
  env: Record<string, string>,
  args: string[] = [],
): Promise<DevServer> {
  const child = spawnDevServer(env, args);
  let text = "";
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      for (const w of waiters) w();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let ended = false;
  const exited = child.status.then(async (status) => {
    await pumps;
    ended = true;
    for (const w of waiters) w();
    return status;
  });

  const waitForOutput = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(text)) {
          cleanup();
          resolve();
        } else if (ended) {
          cleanup();
          reject(
            new Error(`dev server exited before printing ${pattern}:\n${text}`),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${pattern}:\n${text}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!ended) {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    }
    return (await exited).code;
  };

  // Text and JSON logs both print the rendered address.
  const listening = /Listening on http:\/\/[^\s:]+:(\d+)/;
  try {
    await waitForOutput(listening, 60_000);
  } catch (e) {
    await stop("SIGKILL");
    throw e;
  }
  const match = text.match(listening)!;
  const port = match[1];
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => text,
    waitForOutput,
    stop,
    exited,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
    },
  };
}

/** How a dev server run that was expected to end ended. */
export interface DevServerExit {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** From spawn to exit. */
  readonly ms: number;
}

/**
 * Runs `src/dev/main.ts` and waits for it to exit (for start-up refusals);
 * kills it after `timeoutMs`.
 */
export async function runDevServerToExit(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<DevServerExit> {
  const started = performance.now();
  const child = spawnDevServer(env);
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
      ms: performance.now() - started,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A JSON response: status, parsed body and content type. */
export interface JsonResponse {
  status: number;
  body: Record<string, unknown>;
  contentType: string | null;
}

/** Sends a request and reads a JSON answer. */
export async function request(
  url: string,
  init: RequestInit = {},
): Promise<JsonResponse> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(
      `expected JSON from ${
        init.method ?? "GET"
      } ${url}, got ${response.status}: ${text}`,
    );
  }
  return {
    status: response.status,
    body,
    contentType: response.headers.get("content-type"),
  };
}

/** POST /users with a JSON body. */
export function register(
  server: DevServer,
  body: unknown,
): Promise<JsonResponse> {
  return request(`${server.url}/users`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Polls GET /users/:id until the welcome email shows, or times out. */
export async function waitForWelcomeEmail(
  server: DevServer,
  id: string,
  timeoutMs = 20_000,
): Promise<JsonResponse> {
  let user: JsonResponse | undefined;
  await waitUntil(
    () => `the welcome email of ${id}:\n${server.output()}`,
    async () => {
      user = await request(`${server.url}/users/${id}`);
      return Boolean(user.body.welcomeEmailSentAt);
    },
    timeoutMs,
  );
  return user!;
}
