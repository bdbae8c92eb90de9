// Logging is configured by the application, never by the library: readable
// console lines in development, JSON lines with LOG_FORMAT=json.
import {
  configure,
  getConsoleSink,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
} from "@logtape/logtape";

const jsonLines = getJsonLinesFormatter({ message: "template" });

/** A value as text in a message: strings bare, as in the text format. */
function bare(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/**
 * LogTape's JSON line, with `message` rendered (the values filled in, as
 * the text format shows them); the values stay in `properties` too.
 */
function jsonLine(record: LogRecord): string {
  const line = JSON.parse(jsonLines(record)) as Record<string, unknown>;
  line.message = record.message
    .map((part, i) => (i % 2 === 0 ? String(part) : bare(part)))
    .join("");
  return `${JSON.stringify(line)}\n`;
}

/** Configures LogTape for the dev server. */
export async function configureLogging(
  format: "text" | "json",
  level: LogLevel,
): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      console: getConsoleSink({
        formatter: format === "json" ? jsonLine : getTextFormatter({
          timestamp: "time",
          category: ".",
          // Strings as they are: POST /users, not "POST" "/users".
          value: "bare",
        }),
      }),
    },
    loggers: [
      { category: ["aftercommit"], lowestLevel: level, sinks: ["console"] },
      { category: ["dev"], lowestLevel: level, sinks: ["console"] },
      // Where the server listens, which databases it uses, and its stop are
      // printed whatever LOG_LEVEL says.
      {
        category: ["dev", "server"],
        lowestLevel: level === "trace" || level === "debug" ? level : "info",
        sinks: ["console"],
        parentSinks: "override",
      },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["console"],
      },
    ],
  });
}
