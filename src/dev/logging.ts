// Logging is configured by the application, never by the library: readable
// console lines in development, JSON lines with LOG_FORMAT=json.
import {
  configure,
  getConsoleSink,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
} from "@logtape/logtape";

/** Configures LogTape for the dev server. */
export async function configureLogging(
  format: "text" | "json",
  level: LogLevel,
): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      console: getConsoleSink({
        formatter: format === "json"
          // The message template plus the values as properties: one field each.
          ? getJsonLinesFormatter({ message: "template" })
          : getTextFormatter({
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
