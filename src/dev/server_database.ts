// Makes sure a database named by DATABASE_URL or JOB_QUEUE_DATABASE_URL
// exists before the dev server uses it: one PostgreSQL server is enough, and
// a missing database is created on it. A server that cannot be reached gives
// a StartupError with one clear line.
import postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import { describeUrl } from "./config.ts";
import { StartupError } from "./startup_error.ts";

const logger = getLogger(["dev", "server"]);

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** One line on why a connection failed: an error code, or the server's message. */
function reasonOf(e: unknown): string {
  const code = codeOf(e);
  const message = e instanceof Error ? e.message : String(e);
  if (code !== undefined && /^E[A-Z]+$/.test(code)) return code;
  return message.split("\n")[0] ?? message;
}

/**
 * Connects to `url`, creating its database when the server says it does not
 * exist (on the same server, through its `postgres` database).
 *
 * @param url The database URL.
 * @param variable The environment variable that named it, for the message.
 * @throws {StartupError} When the server cannot be reached or refuses.
 */
export async function ensureServerDatabase(
  url: string,
  variable: string,
): Promise<void> {
  const where = describeUrl(url);
  const fail = (what: string, cause: unknown) =>
    new StartupError(
      `${what} ${where} (${variable}): ${
        reasonOf(cause)
      }. Start PostgreSQL there or fix ${variable}; unset it to use an embedded database instead`,
      { cause },
    );
  const options = { max: 1, connect_timeout: 10, onnotice: () => {} };
  const sql = postgres(url, options);
  try {
    await sql`select 1`;
    return;
  } catch (e) {
    if (codeOf(e) !== "3D000") throw fail("Cannot connect to", e);
  } finally {
    await sql.end({ timeout: 1 });
  }
  // invalid_catalog_name: the server answers, the database is missing.
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  const adminUrl = new URL(url);
  adminUrl.pathname = "/postgres";
  const admin = postgres(adminUrl.href, options);
  try {
    await admin`create database ${admin(name)}`;
    logger.info("Created database {database} on {server}", {
      database: name,
      server: describeUrl(adminUrl.href).replace(/\/postgres$/, ""),
    });
  } catch (e) {
    // 42P04: another process created it meanwhile.
    if (codeOf(e) !== "42P04") throw fail("Cannot create the database", e);
  } finally {
    await admin.end({ timeout: 1 });
  }
}
