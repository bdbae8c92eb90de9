// deno-lint-ignore-file no-console require-await -- prints its table; the handlers are async on purpose
// Before and after: the bus of this tree against the bus of another
// revision, in one run, next to a hand-written awaited loop and emittery's
// `emitSerial` (the bus's semantics). Every variant is one call returning a
// promise, awaited by the same loop. Rounds of short runs, every variant in
// a new random order each round, ratios taken within a round, so load that
// comes and goes hits all alike. Peers at their best are bench:compare (e).
//
//   deno run -A --frozen bench/event_bus_bench.ts REV [rounds] [publishes]
//
// Both builds share globalThis (and so what telemetry finds there).
import Emittery from "emittery";
import { EventBus } from "../mod.ts";

const [rev = "HEAD", rounds = "201", publishes = "4000"] = Deno.args;

async function busAt(rev: string): Promise<typeof EventBus> {
  const dir = await Deno.makeTempDir({ prefix: "aftercommit-bus-" });
  const root = new URL("../", import.meta.url).pathname;
  const archive = new Deno.Command("sh", {
    args: [
      "-c",
      `git -C "${root}" archive "${rev}" src mod.ts | tar -x -C "${dir}"`,
    ],
  });
  if (!(await archive.output()).success) throw new Error(`no revision ${rev}`);
  return (await import(`file://${dir}/mod.ts`)).EventBus;
}

class OrderPlaced {
  constructor(readonly n: number) {}
}

const Before = await busAt(rev);
let calls = 0;
const variants: { group: number; name: string; once: () => Promise<void> }[] =
  [];
for (const group of [1, 3]) {
  const event = new OrderPlaced(1);
  const handlers = Array.from(
    { length: group },
    () => async (e: OrderPlaced) => {
      calls += e.n;
    },
  );
  const byType = new Map([[OrderPlaced as unknown, handlers]]);
  variants.push({
    group,
    name: "hand-written awaited loop",
    once: async () => {
      const found = byType.get(event.constructor)!;
      for (let i = 0; i < found.length; i++) await found[i]!(event);
    },
  });
  for (
    const [build, Bus] of [[rev, Before], ["this tree", EventBus]] as const
  ) {
    const bus = new Bus();
    for (const h of handlers) bus.register(OrderPlaced, h);
    variants.push(
      { group, name: `publish, ${build}`, once: () => bus.publish(event) },
      {
        group,
        name: `publishAll([e]), ${build}`,
        once: () => bus.publishAll([event]),
      },
    );
  }
  const emittery = new Emittery<{ order: OrderPlaced }>();
  for (const h of handlers) emittery.on("order", ({ data }) => h(data));
  variants.push({
    group,
    name: "emittery emitSerial",
    once: () => emittery.emitSerial("order", event),
  });
}

const ns = new Map(variants.map((v) => [v, [] as number[]]));
for (let r = 0; r < Number(rounds); r++) {
  for (const v of variants.toSorted(() => Math.random() - 0.5)) {
    const n = Number(publishes) / (v.name.startsWith("emittery") ? 10 : 1);
    calls = 0;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await v.once();
    ns.get(v)!.push((performance.now() - t0) * 1e6 / n);
    if (calls !== n * v.group) throw new Error(`${v.name}: ${calls} calls`);
  }
}

const spread = (xs: number[]): string => {
  const s = xs.toSorted((a, b) => a - b);
  return [s[0]!, s[s.length >> 1]!, s.at(-1)!].map((x) => x.toFixed(2))
    .join(" / ");
};
const ratio = (a: number[], b: number[]) => spread(a.map((x, i) => x / b[i]!));
console.log(`${rounds} rounds of ${publishes} publishes; min / median / max`);
for (const group of [1, 3]) {
  const of = variants.filter((v) => v.group === group);
  const loop = ns.get(of[0]!)!;
  console.log(
    `\n${group} async handler(s)      ns median   × hand-written loop`,
  );
  for (const v of of) {
    const t = ns.get(v)!;
    console.log(
      `  ${v.name.padEnd(30)} ${spread(t).split(" / ")[1]!.padStart(8)}   ${
        ratio(t, loop)
      }`,
    );
  }
  for (const what of ["publish", "publishAll([e])"]) {
    const [before, after] = [rev, "this tree"].map((b) =>
      ns.get(of.find((v) => v.name === `${what}, ${b}`)!)!
    );
    console.log(`  ${what}: this tree ÷ ${rev}: ${ratio(after!, before!)}`);
  }
}
