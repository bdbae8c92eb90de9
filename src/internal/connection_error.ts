// Whether an error says the connection to a database (or another
// dependency) is gone or could not be made, as opposed to the server refusing
// one statement. Read from codes only, so the application layer loads no
// driver: postgres.js's own codes, Node's errno codes, and the SQLSTATEs a
// server sends as it drops the session.

const CODES = new Set([
  // postgres.js
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  // Node and Deno sockets
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  // SQLSTATE: admin_shutdown, crash_shutdown, cannot_connect_now
  "57P01",
  "57P02",
  "57P03",
]);

/**
 * Whether `error`, or an error in its `cause` chain, is a lost or refused
 * connection: the session it ran on is gone, and what the server did with
 * the statement in flight is unknown.
 */
export function isConnectionError(error: unknown): boolean {
  let current = error;
  for (let depth = 0; depth < 5; depth++) {
    if (current === null || typeof current !== "object") return false;
    const { code, severity } = current as {
      code?: unknown;
      severity?: unknown;
    };
    if (
      typeof code === "string" && (CODES.has(code) || code.startsWith("08"))
    ) {
      return true;
    }
    // A FATAL or PANIC error ends the session whatever its SQLSTATE.
    if (severity === "FATAL" || severity === "PANIC") return true;
    if (current instanceof AggregateError) {
      return current.errors.some((e) => isConnectionError(e));
    }
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
