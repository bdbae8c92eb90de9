// What @On keeps in a class's decorator metadata and how subscribe() reads it
// back; which classes with instance handlers were never subscribed.
import type { EventClass } from "./types.ts";

// Deno has Symbol.metadata natively; keep the module loadable elsewhere.
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for("Symbol.metadata");

/** One `@On(Type)` (or `@OnAny()`, with `type` null) on one method. */
export interface HandlerRecord {
  readonly type: EventClass | null;
  readonly order: number;
  readonly subclasses: boolean;
  readonly name: string | symbol;
  readonly isStatic: boolean;
  readonly isPrivate: boolean;
  readonly get: (target: unknown) => unknown;
}

const HANDLERS: unique symbol = Symbol("aftercommit.handlers");
type Metadata = { [HANDLERS]?: HandlerRecord[] };

/** Adds a record to this class's own metadata (never to a parent's list). */
export function addHandlerRecord(
  metadata: DecoratorMetadataObject,
  record: HandlerRecord,
): void {
  const meta = metadata as Metadata;
  // Defined, not assigned: a parent's list is inherited and not writable.
  if (!Object.hasOwn(meta, HANDLERS)) {
    Object.defineProperty(meta, HANDLERS, { value: [] });
  }
  meta[HANDLERS]!.push(record);
}

/** What a handler type may match: a class and its ancestors, nearest first. */
export function chainOf(type: unknown): unknown[] {
  return typeof type === "function" ? ancestors(type) : [type];
}

// Every prototype up to Function.prototype, classes or not.
function ancestors(klass: object | null): object[] {
  return klass === null || klass === Function.prototype
    ? []
    : [klass, ...ancestors(Object.getPrototypeOf(klass))];
}

/**
 * Where a handler of `type` (nullish: a catch-all) stands for an event whose
 * class and ancestors are `chain`: 0 for the event's class, 1 its parent…,
 * Infinity for a catch-all, -1 when it does not receive the event.
 */
export function distanceOf(
  chain: unknown[],
  type: unknown,
  subclasses: boolean,
): number {
  if (type == null) return Infinity;
  const distance = chain.indexOf(type);
  return distance === 0 || subclasses ? distance : -1;
}

/**
 * The `@On` records of a class and its ancestors, ancestors first. A public
 * method decorated again in a subclass has the subclass's records only.
 */
export function collectHandlerRecords(
  klass: object,
  isStatic: boolean,
): HandlerRecord[] {
  let result: HandlerRecord[] = [];
  const same = (a: HandlerRecord, b: HandlerRecord) =>
    !a.isPrivate && a.isStatic === b.isStatic && a.type === b.type &&
    a.name === b.name;
  for (const c of ancestors(klass).reverse()) {
    const meta = Object.hasOwn(c, Symbol.metadata)
      ? (c as { [Symbol.metadata]?: Metadata | null })[Symbol.metadata]
      : undefined;
    if (meta == null || !Object.hasOwn(meta, HANDLERS)) continue;
    const own = meta[HANDLERS]!.filter((r, i, all) =>
      r.isStatic === isStatic && !all.slice(0, i).some((o) => same(o, r))
    );
    // A class that decorates a method again replaces what its ancestors'
    // decorators said of it, in their place (a #private one is its own).
    const redone = (r: HandlerRecord) =>
      r.isPrivate ? [] : own.filter((o) => !o.isPrivate && o.name === r.name);
    const placed = new Set<string | symbol>();
    result = result.flatMap((r) => {
      const mine = redone(r);
      if (mine.length === 0) return [r];
      if (placed.has(r.name)) return [];
      placed.add(r.name);
      return mine;
    });
    result.push(...own.filter((r) => r.isPrivate || !placed.has(r.name)));
  }
  return result;
}

// The classes with @On instance methods that were constructed and never
// subscribed, with the records subscribe() would register (collected once,
// when first asked). Classes, not instances: no instance is kept alive.
const unsubscribed = new Map<object, HandlerRecord[] | undefined>();
const subscribed = new WeakSet<object>();

/** Whether any class is waiting: the hot path asks only this. */
export function hasUnsubscribed(): boolean {
  return unsubscribed.size !== 0;
}

/** Called (by the decorator's initializer) when `instance` is constructed. */
export function noteConstructed(instance: object): void {
  const klass = (instance as { constructor?: unknown }).constructor;
  if (typeof klass !== "function" || subscribed.has(klass)) return;
  if (!unsubscribed.has(klass)) unsubscribed.set(klass, undefined);
}

/** Called by `subscribe(instance)`: that class is in use, warn no more. */
export function noteSubscribed(klass: object): void {
  subscribed.add(klass);
  unsubscribed.delete(klass);
}

/** Classes that would handle `type` and have only unsubscribed instances. */
export function unsubscribedClassesFor(type: unknown): Set<object> {
  const chain = chainOf(type);
  const result = new Set<object>();
  for (let [klass, records] of unsubscribed) {
    if (records === undefined) {
      unsubscribed.set(klass, records = collectHandlerRecords(klass, false));
    }
    for (const record of records) {
      const distance = distanceOf(chain, record.type, record.subclasses);
      if (distance >= 0) result.add(klass);
    }
  }
  return result;
}
