// Reading finished spans in the telemetry tests (integration and e2e).
import assert from "node:assert/strict";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";

/** The one span named `name` among `spans`; fails on none or several. */
export function one(
  spans: readonly ReadableSpan[],
  name: string,
): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  assert.equal(
    found.length,
    1,
    `one span named ${name}; spans: ${spans.map((s) => s.name).join(", ")}`,
  );
  return found[0]!;
}

/** The spans named `name`, in the order of their numeric `attempt` attribute. */
export function byAttempt(
  spans: readonly ReadableSpan[],
  name: string,
  attempt: string,
): ReadableSpan[] {
  return spans
    .filter((s) => s.name === name)
    .sort((a, b) =>
      Number(a.attributes[attempt]) - Number(b.attributes[attempt])
    );
}

/** Every string a span exports: name, attributes, events, status, links. */
export function exported(span: ReadableSpan): string {
  return JSON.stringify([
    span.name,
    span.attributes,
    span.events.map((e) => [e.name, e.attributes]),
    span.status,
    span.links.map((l) => l.attributes),
  ]);
}

/** Fails if any span exports one of `secrets` (case-insensitively). */
export function assertNothingHolds(
  spans: readonly ReadableSpan[],
  secrets: readonly string[],
): void {
  for (const span of spans) {
    const text = exported(span).toLowerCase();
    for (const secret of secrets) {
      assert.ok(
        !text.includes(secret.toLowerCase()),
        `span "${span.name}" (${span.instrumentationScope.name}) holds "${secret}": ${
          exported(span)
        }`,
      );
    }
  }
}
