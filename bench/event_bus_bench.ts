// Publishing is the hot path: compare `bus.publish(event)` with a
// hand-written loop that awaits the same async functions, emittery and
// eventemitter3, in one run. `deno task bench` prints each group's ratios
// against the hand-written baseline.
import Emittery from "emittery";
import { EventEmitter } from "eventemitter3";
import { EventBus } from "../mod.ts";

class OrderPlaced {
  constructor(readonly amount: number) {}
}

let sink = 0;
function makeHandlers(count: number): ((e: OrderPlaced) => Promise<void>)[] {
  return Array.from(
    { length: count },
    // deno-lint-ignore require-await
    (_, i) => async (e: OrderPlaced) => {
      sink += e.amount + i;
    },
  );
}

for (const count of [1, 3]) {
  const group = `publish to ${count} async handler${count === 1 ? "" : "s"}`;
  const handlers = makeHandlers(count);
  const event = new OrderPlaced(1);

  Deno.bench({
    name: "hand-written loop",
    group,
    baseline: true,
    async fn() {
      for (const h of handlers) await h(event);
    },
  });

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

  const emittery = new Emittery<{ order: OrderPlaced }>();
  // emittery 2 hands listeners `{ name, data }`.
  for (const h of handlers) emittery.on("order", ({ data }) => h(data));
  Deno.bench({
    name: "emittery emit",
    group,
    async fn() {
      await emittery.emit("order", event);
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

globalThis.addEventListener("unload", () => {
  if (sink < 0) throw new Error("unreachable: keeps the handlers' work alive");
});
