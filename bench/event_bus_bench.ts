// deno-lint-ignore-file no-console -- deno run prints the interleaved ratios
// Publishing is the hot path: compare `bus.publish(event)` with the same
// async functions awaited one by one by hand, emittery's `emitSerial` (the
// same semantics: each listener awaited before the next) and eventemitter3,
// in one run. `deno task bench` prints each group's ratios against the
// baseline of the group, the hand-written loop inline in the caller.
//
// On a busy machine `deno bench` measures one case after the other, so load
// that comes and goes skews its ratios. `deno run -A --frozen
// bench/event_bus_bench.ts` measures the same cases interleaved (round after
// round, 1,001 rounds of 2,000 publishes per case, about 3 s) and prints
// the median of each round's ratio to each baseline: the figures to trust
// when the machine is shared. It leaves out deno bench's own cost per
// iteration, so its ratios are stricter (higher) than deno bench's.
//
// Two hand-written baselines: the loop inline in the caller (the least any
// dispatch can cost), and the same loop in an async function the caller
// awaits, finding the handlers with one Map lookup (what a dispatcher
// written by hand costs: one async frame more). The bus logs a failing
// handler before the caller sees its error: with one handler that is one
// promise reaction per publish (the caller awaits the handler's own
// promise), with several the one async frame of the dispatch loop.
import Emittery from "emittery";
import { EventEmitter } from "eventemitter3";
import { DomainEvent, EventBus, type EventHandler } from "../mod.ts";

class OrderPlaced extends DomainEvent {
  constructor(readonly amount: number) {
    super();
  }
}
class LargeOrderPlaced extends OrderPlaced {}

let sink = 0;
type Handler = (e: OrderPlaced) => Promise<void>;
function makeHandlers(count: number): Handler[] {
  return Array.from(
    { length: count },
    // deno-lint-ignore require-await
    (_, i) => async (e: OrderPlaced) => {
      sink += e.amount + i;
    },
  );
}

function handWritten(
  group: string,
  handlers: readonly Handler[],
  event: OrderPlaced,
): void {
  Deno.bench({
    name: "hand-written loop, inline",
    group,
    baseline: true,
    async fn() {
      for (const h of handlers) await h(event);
    },
  });
  const byType = new Map<unknown, readonly Handler[]>([
    [event.constructor, handlers],
  ]);
  async function dispatch(e: OrderPlaced): Promise<void> {
    const found = byType.get(e.constructor);
    if (found === undefined) return;
    for (let i = 0; i < found.length; i++) await found[i]!(e);
  }
  Deno.bench({
    name: "hand-written loop, in an async function",
    group,
    async fn() {
      await dispatch(event);
    },
  });
}

// Handlers registered for the event's exact class.
for (const count of [1, 3]) {
  const group = `exact type, ${count} async handler${count === 1 ? "" : "s"}`;
  const handlers = makeHandlers(count);
  const event = new OrderPlaced(1);
  handWritten(group, handlers, event);

  const bus = new EventBus();
  for (const h of handlers) bus.register(OrderPlaced, h);
  Deno.bench({
    name: "aftercommit publish",
    group,
    async fn() {
      await bus.publish(event);
    },
  });

  const collect = new EventBus({ errorPolicy: "collect" });
  for (const h of handlers) collect.register(OrderPlaced, h);
  Deno.bench({
    name: "aftercommit publish (collect policy)",
    group,
    async fn() {
      await collect.publish(event);
    },
  });

  const signal = new AbortController().signal;
  Deno.bench({
    name: "aftercommit publish with { signal }",
    group,
    async fn() {
      await bus.publish(event, { signal });
    },
  });

  const emittery = new Emittery<{ order: OrderPlaced }>();
  // emittery 2 hands listeners `{ name, data }`.
  for (const h of handlers) emittery.on("order", ({ data }) => h(data));
  Deno.bench({
    name: "emittery emitSerial",
    group,
    async fn() {
      await emittery.emitSerial("order", event);
    },
  });

  const ee = new EventEmitter();
  for (const h of handlers) ee.on("order", h);
  Deno.bench({
    name: "eventemitter3 emit (does not await handlers)",
    group,
    fn() {
      ee.emit("order", event);
    },
  });
}

// The same three handlers reached through inheritance: one for the event's
// class, one for its parent with `subclasses: true`, one catch-all.
{
  const group = "3 async handlers: exact, base class, catch-all";
  const [own, base, any] = makeHandlers(3) as [Handler, Handler, Handler];
  const event = new LargeOrderPlaced(1);
  handWritten(group, [own, base, any], event);

  const exact = new EventBus();
  exact.register(LargeOrderPlaced, own);
  exact.register(LargeOrderPlaced, base);
  exact.register(LargeOrderPlaced, any);
  Deno.bench({
    name: "aftercommit publish, 3 exact-type handlers",
    group,
    async fn() {
      await exact.publish(event);
    },
  });

  const poly = new EventBus();
  poly.register(LargeOrderPlaced, own);
  poly.register(OrderPlaced, base, { subclasses: true });
  poly.onAny(any as EventHandler);
  Deno.bench({
    name: "aftercommit publish, subclasses and onAny",
    group,
    async fn() {
      await poly.publish(event);
    },
  });

  const emittery = new Emittery<{ order: OrderPlaced }>();
  emittery.on("order", ({ data }) => own(data));
  emittery.on("order", ({ data }) => base(data));
  emittery.onAny(({ data }) => any(data as OrderPlaced));
  Deno.bench({
    name: "emittery emitSerial (2 listeners, 1 onAny)",
    group,
    async fn() {
      await emittery.emitSerial("order", event);
    },
  });
}

// Interleaved ratios (deno run only: Deno.bench registers nothing then).
if (import.meta.main) {
  const cases: [
    group: string,
    name: string,
    run: (n: number) => Promise<void>,
  ][] = [];
  const add = (
    group: string,
    handlers: readonly Handler[],
    event: OrderPlaced,
    bus: EventBus,
  ): void => {
    const byType = new Map<unknown, readonly Handler[]>([
      [event.constructor, handlers],
    ]);
    async function dispatch(e: OrderPlaced): Promise<void> {
      const found = byType.get(e.constructor);
      if (found === undefined) return;
      for (let i = 0; i < found.length; i++) await found[i]!(e);
    }
    const emittery = new Emittery<{ order: OrderPlaced }>();
    for (const h of handlers) emittery.on("order", ({ data }) => h(data));
    cases.push(
      [group, "hand-written loop, inline", async (n) => {
        for (let i = 0; i < n; i++) for (const h of handlers) await h(event);
      }],
      [group, "hand-written, async function", async (n) => {
        for (let i = 0; i < n; i++) await dispatch(event);
      }],
      [group, "aftercommit publish", async (n) => {
        for (let i = 0; i < n; i++) await bus.publish(event);
      }],
      [group, "emittery emitSerial", async (n) => {
        for (let i = 0; i < n; i++) await emittery.emitSerial("order", event);
      }],
    );
  };
  for (const count of [1, 3]) {
    const handlers = makeHandlers(count);
    const bus = new EventBus();
    for (const h of handlers) bus.register(OrderPlaced, h);
    add(
      `exact type, ${count} async handler${count === 1 ? "" : "s"}`,
      handlers,
      new OrderPlaced(1),
      bus,
    );
  }
  {
    const [own, base, any] = makeHandlers(3) as [Handler, Handler, Handler];
    const poly = new EventBus();
    poly.register(LargeOrderPlaced, own);
    poly.register(OrderPlaced, base, { subclasses: true });
    poly.onAny(any as EventHandler);
    add(
      "3 async handlers: exact, base class (subclasses), catch-all (onAny)",
      [own, base, any],
      new LargeOrderPlaced(1),
      poly,
    );
  }
  // Many short rounds: load that comes and goes hits every case alike.
  const rounds = 1001;
  const perRound = 2_000;
  const times = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (let c = 0; c < cases.length; c++) {
      const n = cases[c]![1].startsWith("emittery") ? perRound / 10 : perRound;
      const start = performance.now();
      await cases[c]![2](n);
      times[c]!.push((performance.now() - start) / n * 1e6);
    }
  }
  const median = (xs: number[]): number =>
    [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  // Columns: median time, then the median of the per-round ratios to the
  // inline loop and to the loop in an async function.
  let inline: number[] = [];
  let fn: number[] = [];
  for (let c = 0; c < cases.length; c++) {
    const [group, name] = cases[c]!;
    if (name === "hand-written loop, inline") {
      inline = times[c]!;
      fn = times[c + 1]!;
      console.log(`\n${group}: ns, × inline loop, × loop in async function`);
    }
    const ratio = (base: number[]): string =>
      median(times[c]!.map((t, r) => t / base[r]!)).toFixed(2).padStart(6);
    console.log(
      `  ${name.padEnd(30)} ${median(times[c]!).toFixed(1).padStart(7)}  ${
        ratio(inline)
      }  ${ratio(fn)}`,
    );
  }
}

globalThis.addEventListener("unload", () => {
  if (sink < 0) throw new Error("unreachable: keeps the handlers' work alive");
});
