// deno-lint-ignore-file no-console
// `deno task dev`: the example application. Embedded databases unless
// DATABASE_URL and JOB_QUEUE_DATABASE_URL are set.
import { getLogger } from "@logtape/logtape";
import { readConfig } from "./config.ts";
import { configureLogging } from "./logging.ts";
import { startApp } from "./app.ts";

const logger = getLogger(["dev", "server"]);

let config;
try {
  config = readConfig(Deno.args, Deno.env.toObject());
} catch (e) {
  console.error(`Cannot start the dev server: ${(e as Error).message}`);
  Deno.exit(2);
}
// An empty variable means "not set" here (docker compose and shells write
// them); the job adapter would otherwise reject it as an empty URL.
for (const name of ["DATABASE_URL", "JOB_QUEUE_DATABASE_URL"]) {
  if (Deno.env.get(name) === "") Deno.env.delete(name);
}
await configureLogging(config.logFormat, config.logLevel);

const started = performance.now();
const app = await startApp(config);
logger.info("Application database: {app}", { app: app.databases.app });
logger.info("Jobs database: {jobs}", { jobs: app.databases.jobs });

const server = Deno.serve({
  port: config.port,
  hostname: config.hostname,
  onListen({ hostname, port }) {
    logger.info("Listening on http://{hostname}:{port}/ (started in {ms} ms)", {
      hostname,
      port,
      ms: Math.round(performance.now() - started),
    });
  },
}, app.handler);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info("{signal}: stopping (running jobs finish first)", { signal });
  await server.shutdown();
  await app.close();
  logger.info("Stopped");
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
