// Read from error codes only, so the application layer loads no driver.
// deno-fmt-ignore
const CODES = new Set([
  // postgres.js
  "CONNECTION_CLOSED", "CONNECTION_DESTROYED", "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  // Node and Deno sockets
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT",
  "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "ENOTFOUND", "EAI_AGAIN",
  // SQLSTATE: admin_shutdown, crash_shutdown, cannot_connect_now
  "57P01", "57P02", "57P03",
]);

/**
 * Whether `error` or its `cause` chain is a lost or refused connection (not
 * a refused statement): what the server did with the statement is unknown.
 */
export function isConnectionError(error: unknown): boolean {
  let current = error;
  for (let depth = 0; depth < 5; depth++) {
    if (current === null || typeof current !== "object") return false;
    const { code, severity } = current as Record<string, unknown>;
    const text = typeof code === "string" ? code : "";
    if (CODES.has(text) || text.startsWith("08")) return true;
    // A FATAL or PANIC error ends the session whatever its SQLSTATE.
    if (severity === "FATAL" || severity === "PANIC") return true;
    if (current instanceof AggregateError) {
      return current.errors.some(isConnectionError);
    }
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
