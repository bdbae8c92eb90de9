// The dev server's settings, from the environment and the command line.
import type { LogLevel } from "@logtape/logtape";

/** Everything main.ts needs to start. */
export interface DevConfig {
  readonly port: number;
  readonly hostname: string;
  /** The application database, or undefined for embedded PGlite. */
  readonly databaseUrl: string | undefined;
  /** The jobs database, or undefined for embedded PGlite. */
  readonly jobQueueDatabaseUrl: string | undefined;
  /** Where embedded databases keep their files (git-ignored). */
  readonly dataDir: string;
  /** Start from empty embedded databases. */
  readonly fresh: boolean;
  readonly logFormat: "text" | "json";
  readonly logLevel: LogLevel;
  /** Turn the transactional outbox on (the default) or off. */
  readonly outbox: boolean;
  /** Failed dispatches after which an outbox event is parked. */
  readonly outboxMaxAttempts: number;
  /** Pretend the welcome email takes this long to send. */
  readonly mailerDelayMs: number;
  /** How long a request body may take to arrive before a 408. */
  readonly bodyTimeoutMs: number;
}

const LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

function integer(
  env: Record<string, string | undefined>,
  name: string,
  fallback: number,
  max: number,
): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(
      `${name} must be an integer from 0 to ${max}, received ${
        JSON.stringify(raw)
      }`,
    );
  }
  return value;
}

function flag(
  raw: string | undefined,
  name: string,
  fallback: boolean,
): boolean {
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new TypeError(
    `${name} must be true or false, received ${JSON.stringify(raw)}`,
  );
}

function databaseUrl(
  env: Record<string, string | undefined>,
  name: string,
): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    // reported below
  }
  if (
    url === undefined ||
    (url.protocol !== "postgres:" && url.protocol !== "postgresql:") ||
    url.pathname.length < 2
  ) {
    throw new TypeError(
      `${name} must be a URL such as postgres://postgres@127.0.0.1:5432/app (with a database name), received ${
        url === undefined ? "text that is not a URL" : describeUrl(raw)
      }; unset it to use an embedded database`,
    );
  }
  return raw;
}

/** Reads the configuration; throws a clear error for a bad value. */
export function readConfig(
  args: readonly string[],
  env: Record<string, string | undefined>,
): DevConfig {
  for (const arg of args) {
    if (arg !== "--fresh") {
      throw new TypeError(
        `Unknown argument ${
          JSON.stringify(arg)
        }: the only flag is --fresh (start from empty embedded databases)`,
      );
    }
  }
  const logFormat = env.LOG_FORMAT || "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw new TypeError(
      `LOG_FORMAT must be "text" or "json", received ${
        JSON.stringify(logFormat)
      }`,
    );
  }
  const logLevel = (env.LOG_LEVEL || "info") as LogLevel;
  if (!LEVELS.includes(logLevel)) {
    throw new TypeError(
      `LOG_LEVEL must be one of ${LEVELS.join(", ")}, received ${
        JSON.stringify(logLevel)
      }`,
    );
  }
  return {
    port: integer(env, "PORT", 8000, 65535),
    hostname: env.HOST || "127.0.0.1",
    databaseUrl: databaseUrl(env, "DATABASE_URL"),
    jobQueueDatabaseUrl: databaseUrl(env, "JOB_QUEUE_DATABASE_URL"),
    dataDir: env.DATA_DIR || ".data",
    fresh: args.includes("--fresh") || flag(env.FRESH, "FRESH", false),
    logFormat,
    logLevel,
    outbox: flag(env.OUTBOX, "OUTBOX", true),
    outboxMaxAttempts: integer(env, "OUTBOX_MAX_ATTEMPTS", 10, 1000) || 1,
    mailerDelayMs: integer(env, "MAILER_DELAY_MS", 0, 600_000),
    bodyTimeoutMs: integer(env, "BODY_TIMEOUT_MS", 10_000, 600_000) || 1,
  };
}

/** A URL's scheme, host, port and database, without user or password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.hostname}${
      u.port ? `:${u.port}` : ""
    }${u.pathname}`;
  } catch {
    return "(an unparsable URL)";
  }
}
