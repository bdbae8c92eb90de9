// deno-lint-ignore-file require-await -- the handlers are async on purpose: the bench measures async handlers
// (e) Publishing one event in process: aftercommit's publish and publishAll
// against a hand-written awaited loop and the listener lists of emittery
// (emitSerial: the bus's own semantics, each listener awaited in turn),
// eventemitter3, mitt and node:events, each driven by the same awaited loop.
// Every variant is one call returning a promise that the sample loop awaits:
// no side gets an async layer the other has not.
import { EventEmitter as NodeEmitter } from "node:events";
import Emittery from "emittery";
import { EventEmitter as EventEmitter3 } from "eventemitter3";
import mittModule from "mitt";
import { EventBus } from "../../mod.ts";
import {
  check,
  interleave,
  type Report,
  type RunConfig,
  type Variant,
} from "./_lib.ts";

// Deno reads mitt's types as CommonJS (a namespace with `default`); at run
// time the ESM build's default export is the function itself.
const mitt = ((mittModule as { default?: unknown }).default ??
  mittModule) as typeof mittModule.default;

class OrderPlaced {
  constructor(readonly n: number) {}
}

type Handler = (e: OrderPlaced) => Promise<void>;

/** (e) publish one event to 1 and to 3 async handlers. */
export async function publishBench(
  config: RunConfig,
  log: (line: string) => void,
): Promise<Report> {
  const publishes = config.quick ? 20_000 : 200_000;
  const variants: Variant[] = [];
  const groups: Report["groups"][number][] = [];
  for (const count of [1, 3]) {
    let calls = 0;
    const handlers: Handler[] = Array.from(
      { length: count },
      () => async (e) => {
        calls += e.n;
      },
    );
    const event = new OrderPlaced(1);
    const suffix = `${count} handler${count === 1 ? "" : "s"}`;
    const timed = (name: string, once: () => Promise<void>): Variant => ({
      name: `${name}, ${suffix}`,
      async sample() {
        calls = 0;
        const t0 = performance.now();
        for (let i = 0; i < publishes; i++) await once();
        const ns = ((performance.now() - t0) * 1e6) / publishes;
        check(`${name}: handler calls`, calls, publishes * count);
        return { ns };
      },
    });

    const byType = new Map<unknown, Handler[]>([[OrderPlaced, handlers]]);
    const loop = timed("hand-written awaited loop", async () => {
      const found = byType.get(event.constructor)!;
      for (let i = 0; i < found.length; i++) await found[i]!(event);
    });

    const bus = new EventBus();
    for (const h of handlers) bus.register(OrderPlaced, h);
    const publish = timed("aftercommit publish", () => bus.publish(event));
    const publishAll = timed(
      "aftercommit publishAll([e])",
      () => bus.publishAll([event]),
    );

    const emittery = new Emittery<{ order: OrderPlaced }>();
    for (const h of handlers) emittery.on("order", ({ data }) => h(data));
    const emitSerial = timed(
      "emittery emitSerial",
      () => emittery.emitSerial("order", event),
    );

    const ee3 = new EventEmitter3();
    for (const h of handlers) ee3.on("order", h);
    const ee3Loop = timed("eventemitter3 listeners, awaited loop", async () => {
      const ls = ee3.listeners("order") as Handler[];
      for (let i = 0; i < ls.length; i++) await ls[i]!(event);
    });

    const m = mitt<{ order: OrderPlaced }>();
    for (const h of handlers) m.on("order", h);
    const mittLoop = timed("mitt handlers, awaited loop", async () => {
      const ls = m.all.get("order")! as unknown as Handler[];
      for (let i = 0; i < ls.length; i++) await ls[i]!(event);
    });

    const node = new NodeEmitter();
    for (const h of handlers) node.on("order", h);
    const nodeLoop = timed("node:events listeners, awaited loop", async () => {
      const ls = node.listeners("order") as Handler[];
      for (let i = 0; i < ls.length; i++) await ls[i]!(event);
    });

    const all = [
      loop,
      publish,
      publishAll,
      emitSerial,
      ee3Loop,
      mittLoop,
      nodeLoop,
    ];
    variants.push(...all);
    groups.push({
      title: suffix,
      baseline: loop.name,
      rows: all.map((v) => v.name),
    });
  }
  const samples = await interleave(variants, config, log);
  return {
    id: "e_publish",
    title: "(e) Publish one event in process",
    description: `${
      publishes.toLocaleString("en-US")
    } sequential publishes of one event per sample, each awaited; the handlers are \`async\` functions that add to a counter (the count is checked). Baseline: a hand-written loop that looks the handlers up by the event's class and awaits each in turn. emittery's \`emitSerial\` has the bus's semantics; eventemitter3, mitt and node:events do not await listeners, so their listener lists are driven by the same awaited loop as the baseline (their emit is not comparable).`,
    metrics: [{ key: "ns", label: "time per publish", unit: "ns" }],
    groups,
    samples,
  };
}
