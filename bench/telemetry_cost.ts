// deno-lint-ignore-file no-console -- deno run prints the interleaved ratios
// What telemetry costs `bus.publish(event)`, in one run, interleaved:
//
// - "without telemetry": the same bus with its telemetry branch compiled
//   out (a copy of src/ in a temporary folder whose event_bus.ts has every
//   `if (this.#tracing)` made `if (false)`, so V8 drops the branch);
// - "no SDK": the bus as shipped, no tracer provider registered (the
//   default: the bus reads one cached field per publish and makes no span);
// - "no SDK, 2nd copy": the same again, from another copy: its ratio to
//   "no SDK" is what this method reads when nothing differs (the noise
//   floor);
// - "SDK recording": the bus as shipped with the OpenTelemetry SDK
//   registered (a BatchSpanProcessor whose exporter drops what it gets):
//   a `publish` span and a `process` span per handler, every publish.
//
// Each case runs its own copy of the modules, so that no case's JIT
// feedback (the SDK case's spans, say) shapes another's code. Each round
// runs every case for a few milliseconds (NO_SDK publishes each, SDK
// publishes with the SDK recording), in a new random order;
// each ratio is taken within a round, and min / median / max are over the
// rounds, so load that comes and goes on a shared machine cancels out.
//
//   deno run --allow-all --frozen bench/telemetry_cost.ts [--quick]
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import * as shipped from "../mod.ts";

const quick = Deno.args.includes("--quick");
const ROUNDS = quick ? 5 : 101;
const NO_SDK = quick ? 2_000 : 100_000;
const SDK = quick ? 200 : 2_000;

/**
 * The mod.ts of a copy of src/ in a temporary folder; with `strip`, its bus
 * has no telemetry branch.
 */
async function copyOf(strip: boolean): Promise<
  { mod: typeof shipped; dir: string }
> {
  const root = new URL("../", import.meta.url);
  const dir = await Deno.makeTempDir({ prefix: "aftercommit-no-otel-" });
  const copy = async (from: URL, to: string): Promise<void> => {
    for await (const entry of Deno.readDir(from)) {
      if (entry.isDirectory) {
        await Deno.mkdir(`${to}/${entry.name}`);
        await copy(new URL(`${entry.name}/`, from), `${to}/${entry.name}`);
      } else if (entry.name.endsWith(".ts")) {
        await Deno.copyFile(new URL(entry.name, from), `${to}/${entry.name}`);
      }
    }
  };
  await Deno.mkdir(`${dir}/src`);
  await copy(new URL("src/", root), `${dir}/src`);
  await Deno.copyFile(new URL("mod.ts", root), `${dir}/mod.ts`);
  const file = `${dir}/src/application/event_bus.ts`;
  if (!strip) return { mod: await import(`file://${dir}/mod.ts`), dir };
  const source = await Deno.readTextFile(file);
  const patched = source.replaceAll("if (this.#tracing)", "if (false)");
  if (patched === source) {
    throw new Error(
      "event_bus.ts has no `if (this.#tracing)` any more: update this bench's patch",
    );
  }
  await Deno.writeTextFile(file, patched);
  return { mod: await import(`file://${dir}/mod.ts`), dir };
}

type Publish = () => Promise<void>;

/** A bus from `mod` with `handlers` async handlers, and one event. */
function busOf(mod: typeof shipped, handlers: number): Publish {
  class OrderPlaced extends mod.DomainEvent {
    constructor(readonly amount: number) {
      super();
    }
  }
  const bus = new mod.EventBus();
  let sink = 0;
  for (let i = 0; i < handlers; i++) {
    // deno-lint-ignore require-await
    bus.register(OrderPlaced, async (e) => {
      sink += e.amount + i;
    });
  }
  const event = new OrderPlaced(1);
  return () => sink >= 0 ? bus.publish(event) : Promise.resolve();
}

/** µs per publish over `count` publishes. */
async function time(publish: Publish, count: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await publish();
  return ((performance.now() - started) * 1000) / count;
}

function stats(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))]!;
  const f = (v: number) => v.toFixed(3);
  return `min ${f(at(0))}  median ${f(at(0.5))}  max ${f(at(1))}`;
}

function shuffle<T>(list: T[]): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

const stripped = await copyOf(true);
const second = await copyOf(false);
const recording = await copyOf(false);
let exported = 0;
const dropping: SpanExporter = {
  export(spans: ReadableSpan[], done) {
    exported += spans.length;
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};
const provider = new BasicTracerProvider({
  spanProcessors: [new BatchSpanProcessor(dropping)],
});
try {
  for (const handlers of [1, 3]) {
    // The "no SDK" bus resolves its handlers (and reads "no provider")
    // before the SDK is registered; the "SDK" bus after.
    const cases: Record<string, Publish> = {
      "without telemetry": busOf(stripped.mod, handlers),
      "no SDK": busOf(shipped, handlers),
      "no SDK, 2nd copy": busOf(second.mod, handlers),
    };
    for (const publish of Object.values(cases)) await publish();
    context.setGlobalContextManager(
      new AsyncLocalStorageContextManager().enable(),
    );
    trace.setGlobalTracerProvider(provider);
    cases["SDK recording"] = busOf(recording.mod, handlers);
    await cases["SDK recording"]();
    await provider.forceFlush();
    if (exported === 0) throw new Error("The SDK case records no span");

    const us: Record<string, number[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of shuffle(Object.keys(cases))) {
        const count = name === "SDK recording" ? SDK : NO_SDK;
        (us[name] ??= []).push(await time(cases[name]!, count));
      }
    }
    const ratio = (a: string, b: string) =>
      us[a]!.map((value, i) => value / us[b]![i]!);
    console.log(
      `\n${handlers} async handler${
        handlers === 1 ? "" : "s"
      }, ${ROUNDS} rounds (${NO_SDK} publishes per case, ${SDK} with the SDK)`,
    );
    for (const name of Object.keys(cases)) {
      console.log(
        `  ${name.padEnd(18)} µs per publish: ${stats(us[name]!)}`,
      );
    }
    console.log(
      `  no SDK 2nd copy / no SDK:    ${
        stats(ratio("no SDK, 2nd copy", "no SDK"))
      }  (noise floor)`,
    );
    console.log(
      `  no SDK / without telemetry:  ${
        stats(ratio("no SDK", "without telemetry"))
      }`,
    );
    console.log(
      `  SDK recording / no SDK:      ${
        stats(ratio("SDK recording", "no SDK"))
      }`,
    );
    trace.disable();
    context.disable();
  }
  console.log(`\nspans exported by the SDK case: ${exported}`);
} finally {
  await provider.shutdown();
  await Deno.remove(stripped.dir, { recursive: true });
  await Deno.remove(recording.dir, { recursive: true });
  await Deno.remove(second.dir, { recursive: true });
}
