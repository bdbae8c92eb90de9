// Draws docs/telemetry/trace.svg, the README's picture of one registration's
// trace, from real spans: it starts the dev server's app in this process
// with the OpenTelemetry SDK's in-memory exporter, sends one POST /users over
// HTTP, waits for the welcome-email job, and draws the spans of that trace as
// a waterfall (names, nesting, durations, links).
//
//   deno run --allow-all --frozen docs/telemetry/trace.ts
//
// Embedded databases in a temporary folder, unless DATABASE_URL and
// JOB_QUEUE_DATABASE_URL are set. tests/e2e/telemetry_test.ts runs the same
// registration and draws it too, so this script cannot rot unnoticed.
import { context, SpanKind, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { startApp } from "../../src/dev/app.ts";
import { readConfig } from "../../src/dev/config.ts";
import { serve } from "../../src/dev/serve.ts";

/** The SDK registered globally, exporting to memory. */
export interface InMemorySdk extends AsyncDisposable {
  readonly exporter: InMemorySpanExporter;
}

/**
 * Registers the SDK (a tracer provider exporting every ended span to
 * memory, and the AsyncLocalStorage context manager) as the global one.
 * Disposing unregisters it.
 */
export function installInMemorySdk(): InMemorySdk {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  context.setGlobalContextManager(
    new AsyncLocalStorageContextManager().enable(),
  );
  trace.setGlobalTracerProvider(provider);
  return {
    exporter,
    async [Symbol.asyncDispose]() {
      trace.disable();
      context.disable();
      await provider.shutdown();
    },
  };
}

/** What one traced registration gave. */
export interface TracedRegistration {
  /** The HTTP status of POST /users. */
  readonly status: number;
  /** The registration's trace: the one the POST /users span starts. */
  readonly traceId: string;
  /** The spans of that trace. */
  readonly spans: ReadableSpan[];
}

/**
 * Starts the dev server's app on a free port, registers `registration`
 * with POST /users, waits until the welcome-email job's span has ended,
 * then stops the app. The SDK must be installed
 * ({@linkcode installInMemorySdk}).
 *
 * @param env The dev server's environment (DATA_DIR, database URLs).
 */
export async function traceOneRegistration(
  exporter: InMemorySpanExporter,
  env: Record<string, string | undefined>,
  registration: { email: string; name: string },
): Promise<TracedRegistration> {
  const app = await startApp(
    readConfig([], { ...env, PORT: "0", LOG_LEVEL: "fatal" }),
  );
  try {
    const server = await serve({ hostname: "127.0.0.1", port: 0 }, app.handler);
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/users`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(registration),
      });
      await response.body?.cancel();
      const root = exporter.getFinishedSpans().find((s) =>
        s.kind === SpanKind.SERVER && s.name === "POST /users"
      );
      if (root === undefined) {
        throw new Error(
          `No "POST /users" span; spans: ${names(exporter.getFinishedSpans())}`,
        );
      }
      const traceId = root.spanContext().traceId;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const spans = exporter.getFinishedSpans().filter((s) =>
          s.spanContext().traceId === traceId
        );
        if (spans.some((s) => s.name.startsWith("work "))) {
          return { status: response.status, traceId, spans };
        }
        if (Date.now() > deadline) {
          throw new Error(`No job span in 30 s; spans: ${names(spans)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await server.shutdown();
    }
  } finally {
    await app.close();
  }
}

function names(spans: readonly ReadableSpan[]): string {
  return spans.map((s) => s.name).join(", ");
}

const ms = (t: readonly [number, number]): number => t[0] * 1e3 + t[1] / 1e6;

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(
    />/g,
    "&gt;",
  );
}

function formatMs(value: number): string {
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`;
}

const KIND = ["internal", "server", "client", "producer", "consumer"];

/** The grey words after a span's name: the handler, the attempt, its kind. */
function detail(span: ReadableSpan): string {
  const a = span.attributes;
  const words = [KIND[span.kind] ?? ""];
  if (typeof a["aftercommit.handler"] === "string") {
    words.push(a["aftercommit.handler"]);
  }
  if (a["aftercommit.job.attempt"] !== undefined) {
    words.push(`attempt ${a["aftercommit.job.attempt"]}`);
  }
  if (a["aftercommit.outbox.relay"] === true) words.push("by the relay");
  return words.join(" · ");
}
const COLOURS: Record<string, string> = {
  "aftercommit": "#3b6fd1",
  "pg-boss": "#e08a1e",
};
const OTHER_COLOUR = "#3a9a5b";

/**
 * Draws the spans of one trace as a waterfall: one row per span, children
 * under their parent in start order, a bar from its start to its end on a
 * common time axis, its duration, and its links.
 *
 * @param spans The spans of one trace (ended).
 * @param title The picture's title.
 * @returns An SVG document.
 */
export function waterfallSvg(
  spans: readonly ReadableSpan[],
  title: string,
): string {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const children = new Map<string | undefined, ReadableSpan[]>();
  for (const span of spans) {
    const parent = span.parentSpanContext?.spanId;
    const key = parent !== undefined && byId.has(parent) ? parent : undefined;
    children.set(key, [...(children.get(key) ?? []), span]);
  }
  const rows: { span: ReadableSpan; depth: number }[] = [];
  const walk = (parent: string | undefined, depth: number): void => {
    const list = (children.get(parent) ?? []).sort((a, b) =>
      ms(a.startTime) - ms(b.startTime)
    );
    for (const span of list) {
      rows.push({ span, depth });
      walk(span.spanContext().spanId, depth + 1);
    }
  };
  walk(undefined, 0);

  const start = Math.min(...spans.map((s) => ms(s.startTime)));
  const end = Math.max(...spans.map((s) => ms(s.endTime)));
  const total = Math.max(end - start, 0.001);
  const width = 1080;
  const labelWidth = 430;
  const barLeft = labelWidth + 10;
  const barWidth = width - barLeft - 120;
  const rowHeight = 24;
  const top = 58;
  const x = (t: number) => barLeft + ((t - start) / total) * barWidth;
  const out: string[] = [];
  const height = top + rows.length * rowHeight + 56;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="ui-sans-serif, system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${
      escape(title)
    }</text>`,
    `<text x="12" y="40" fill="#555">${spans.length} spans in one trace, ${
      formatMs(total)
    } from the first start to the last end; bars on one time axis</text>`,
  );
  // Time axis ticks.
  for (let i = 0; i <= 4; i++) {
    const t = start + (total * i) / 4;
    const tx = x(t);
    out.push(
      `<line x1="${tx.toFixed(1)}" y1="${top - 6}" x2="${tx.toFixed(1)}" y2="${
        top + rows.length * rowHeight
      }" stroke="#e4e4e4"/>`,
      `<text x="${tx.toFixed(1)}" y="${
        top - 9
      }" fill="#888" font-size="10" text-anchor="middle">${
        formatMs(t - start)
      }</text>`,
    );
  }
  const rowOf = new Map(rows.map((r, i) => [r.span.spanContext().spanId, i]));
  rows.forEach(({ span, depth }, i) => {
    const y = top + i * rowHeight;
    const scope = span.instrumentationScope.name;
    const colour = COLOURS[scope] ?? OTHER_COLOUR;
    const failed = span.status.code === 2;
    if (i % 2 === 1) {
      out.push(
        `<rect x="0" y="${y}" width="${width}" height="${rowHeight}" fill="#f7f8fa"/>`,
      );
    }
    out.push(
      `<text x="${12 + depth * 16}" y="${y + 16}">${escape(span.name)}` +
        `<tspan fill="#888" font-size="10"> ${
          escape(detail(span))
        }</tspan></text>`,
    );
    const x1 = x(ms(span.startTime));
    const w = Math.max(x(ms(span.endTime)) - x1, 1.5);
    out.push(
      `<rect x="${x1.toFixed(1)}" y="${y + 5}" width="${
        w.toFixed(1)
      }" height="${rowHeight - 10}" rx="2" fill="${colour}"${
        failed ? ' stroke="#c62828" stroke-width="2"' : ""
      }/>`,
      `<text x="${(x1 + w + 5).toFixed(1)}" y="${
        y + 16
      }" fill="#333" font-size="11">${
        formatMs(ms(span.endTime) - ms(span.startTime))
      }${failed ? " (error)" : ""}</text>`,
    );
    for (const link of span.links) {
      const target = rowOf.get(link.context.spanId);
      if (target !== undefined) {
        const ty = top + target * rowHeight + rowHeight / 2;
        out.push(
          `<path d="M ${barLeft - 4} ${y + rowHeight / 2} C ${barLeft - 30} ${
            y + rowHeight / 2
          }, ${barLeft - 30} ${ty}, ${
            barLeft - 4
          } ${ty}" fill="none" stroke="#7b1fa2" stroke-dasharray="3 2"/>`,
        );
      } else {
        out.push(
          `<text x="${width - 8}" y="${
            y + 16
          }" fill="#7b1fa2" font-size="10" text-anchor="end">link to another trace</text>`,
        );
      }
    }
  });
  const legendY = top + rows.length * rowHeight + 26;
  const legend: [string, string][] = [
    ["the app (aftercommit-dev)", OTHER_COLOUR],
    ["aftercommit", COLOURS.aftercommit!],
    ["pg-boss", COLOURS["pg-boss"]!],
  ];
  let lx = 12;
  for (const [label, colour] of legend) {
    out.push(
      `<rect x="${lx}" y="${
        legendY - 10
      }" width="12" height="12" rx="2" fill="${colour}"/>`,
      `<text x="${lx + 18}" y="${legendY}">${escape(label)}</text>`,
    );
    lx += 30 + label.length * 7;
  }
  if (spans.some((s) => s.links.length > 0)) {
    out.push(
      `<text x="${lx}" y="${legendY}" fill="#7b1fa2">dashed: a link</text>`,
    );
  }
  out.push(
    `<text x="12" y="${
      legendY + 20
    }" fill="#888" font-size="10">Drawn by docs/telemetry/trace.ts from the spans of one real run (OpenTelemetry SDK, in-memory exporter).</text>`,
    "</svg>",
  );
  return out.join("\n") + "\n";
}

if (import.meta.main) {
  await using sdk = installInMemorySdk();
  const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-trace-" });
  try {
    const env = { ...Deno.env.toObject(), DATA_DIR: dataDir };
    const { status, spans } = await traceOneRegistration(sdk.exporter, env, {
      email: "ada@example.org",
      name: "Ada Lovelace",
    });
    if (status !== 201) throw new Error(`POST /users answered ${status}`);
    const svg = waterfallSvg(
      spans,
      "One POST /users: the request, the commit, the outbox dispatch, the job",
    );
    const file = new URL("./trace.svg", import.meta.url);
    await Deno.writeTextFile(file, svg);
    // As deno fmt writes it, so that CI's format check passes on a redraw.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", file.pathname],
    }).output();
    await Deno.stdout.write(
      new TextEncoder().encode(
        `Wrote ${file.pathname}: ${spans.length} spans (${names(spans)})\n`,
      ),
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}
