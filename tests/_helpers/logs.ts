// Captures every LogTape record the library emits while `fn` runs.
import { configure, type LogRecord, reset } from "@logtape/logtape";

/** Runs `fn` with a sink that keeps every record under ["aftercommit"]. */
export async function captureLogs<T>(
  fn: (records: LogRecord[]) => Promise<T> | T,
): Promise<{ records: LogRecord[]; result: T }> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (record) => records.push(record) },
    loggers: [
      { category: ["aftercommit"], lowestLevel: "trace", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    const result = await fn(records);
    return { records, result };
  } finally {
    await reset();
  }
}

/** Everything a record could print: its message parts and its properties. */
export function recordText(record: LogRecord): string {
  return JSON.stringify(
    { message: record.message, properties: record.properties },
    (_key, value) =>
      value instanceof Error
        ? { name: value.name, message: value.message, stack: value.stack }
        : value,
  );
}
