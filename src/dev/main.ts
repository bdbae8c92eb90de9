// deno-lint-ignore-file no-console
// `deno task dev`: the example application. Embedded databases unless
// DATABASE_URL and JOB_QUEUE_DATABASE_URL are set.
import { getLogger } from "@logtape/logtape";
import { readConfig } from "./config.ts";
import { configureLogging } from "./logging.ts";
import { lockDataDir } from "./data_lock.ts";
import { StartupError } from "./startup_error.ts";
import { type NodeServer, serve } from "./serve.ts";

const logger = getLogger(["dev", "server"]);
const started = performance.now();

/** One line on stderr, no stack trace, and the exit code. */
function refuse(message: string, code: number): never {
  console.error(`Cannot start the dev server: ${message}`);
  Deno.exit(code);
}

let config;
try {
  config = readConfig(Deno.args, Deno.env.toObject());
} catch (e) {
  refuse((e as Error).message, 2);
}
// An empty variable means "not set" here (docker compose and shells write
// them); the job adapter would otherwise reject it as an empty URL.
for (const name of ["DATABASE_URL", "JOB_QUEUE_DATABASE_URL"]) {
  if (Deno.env.get(name) === "") Deno.env.delete(name);
}
await configureLogging(config.logFormat, config.logLevel);

// Before anything opens: one server per data folder, and a free port.
if (
  config.databaseUrl === undefined || config.jobQueueDatabaseUrl === undefined
) {
  try {
    await lockDataDir(config.dataDir);
  } catch (e) {
    refuse((e as Error).message, 1);
  }
}
if (config.port !== 0) {
  try {
    Deno.listen({ hostname: config.hostname, port: config.port }).close();
  } catch (e) {
    refuse(
      e instanceof Deno.errors.AddrInUse
        ? `port ${config.port} on ${config.hostname} is in use (another dev server?): stop it, or set PORT to another port`
        : `cannot listen on ${config.hostname}:${config.port}: ${
          (e as Error).message
        }; set HOST or PORT`,
      1,
    );
  }
}

// The app (databases, drivers, PGlite) loads only now: a refusal above
// costs no module loading.
const { startApp } = await import("./app.ts");
// For bench/dev_server_cold_start.ts (LOG_LEVEL=debug): where start-up goes
// before the databases open. performance.now() counts from the process start.
logger.debug(
  "main.ts began {boot} ms after the process started; the app's modules loaded {ms} ms later",
  { boot: Math.round(started), ms: Math.round(performance.now() - started) },
);
let app;
try {
  app = await startApp(config);
} catch (e) {
  if (e instanceof StartupError) refuse(e.message, 1);
  const cause = (e as Error).cause;
  refuse(
    `${(e as Error).message}${
      cause instanceof Error ? ` (${cause.name}: ${cause.message})` : ""
    }`,
    1,
  );
}
logger.info("Application database: {app}", { app: app.databases.app });
logger.info("Jobs database: {jobs}", { jobs: app.databases.jobs });

let server: NodeServer;
try {
  server = await serve(
    {
      hostname: config.hostname,
      port: config.port,
      headersTimeoutMs: config.bodyTimeoutMs,
    },
    app.handler,
  );
} catch (e) {
  await app.close();
  refuse(
    `cannot listen on ${config.hostname}:${config.port}: ${
      (e as Error).message
    }; set HOST or PORT`,
    1,
  );
}
logger.info("Listening on http://{hostname}:{port}/ (started in {ms} ms)", {
  hostname: config.hostname,
  port: server.port,
  ms: Math.round(performance.now() - started),
});

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info("{signal}: stopping (running jobs finish first)", { signal });
  await server.shutdown();
  await app!.close();
  logger.info("Stopped");
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
