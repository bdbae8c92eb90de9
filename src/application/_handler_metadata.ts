// What @On keeps in a class's decorator metadata, how subscribe() reads it
// back along the class chain, and which classes with instance handlers were
// constructed but never subscribed (for the bus's "no handler" warning).
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
  if (Object.hasOwn(meta, HANDLERS)) meta[HANDLERS]!.push(record);
  else Object.defineProperty(meta, HANDLERS, { value: [record] });
}

function ownRecords(klass: object): readonly HandlerRecord[] {
  if (!Object.hasOwn(klass, Symbol.metadata)) return [];
  const meta = (klass as { [Symbol.metadata]?: Metadata | null })[
    Symbol.metadata
  ];
  return meta != null && Object.hasOwn(meta, HANDLERS) ? meta[HANDLERS]! : [];
}

/** The class and its ancestors, nearest first. */
export function chainOf(klass: object): object[] {
  const chain: object[] = [];
  for (
    let c: object | null = klass;
    c !== null && c !== Function.prototype;
    c = Object.getPrototypeOf(c)
  ) chain.push(c);
  return chain;
}

/**
 * The `@On` records of a class and its ancestors, ancestors first. A public
 * method decorated again in a subclass for the same type appears once.
 */
export function collectHandlerRecords(
  klass: object,
  isStatic: boolean,
): HandlerRecord[] {
  const result: HandlerRecord[] = [];
  const seen = new Map<EventClass | null, Set<string | symbol>>();
  for (const c of chainOf(klass).reverse()) {
    for (const record of ownRecords(c)) {
      if (record.isStatic !== isStatic) continue;
      if (!record.isPrivate) {
        let names = seen.get(record.type);
        if (names === undefined) seen.set(record.type, names = new Set());
        if (names.has(record.name)) continue;
        names.add(record.name);
      }
      result.push(record);
    }
  }
  return result;
}

// Classes with @On instance methods for a type (null: @OnAny), constructed
// and never subscribed; `subclasses: true` apart. Classes, not instances, so
// nothing keeps an instance alive.
const unsubscribed = new Map<EventClass | null, Set<object>>();
const unsubscribedBase = new Map<EventClass | null, Set<object>>();
const subscribed = new WeakSet<object>();
let unsubscribedCount = 0;

/** Whether any class is waiting in the maps: the hot path asks only this. */
export function hasUnsubscribed(): boolean {
  return unsubscribedCount !== 0;
}

/** Called (by the decorator's initializer) when `instance` is constructed. */
export function noteConstructed(
  instance: object,
  type: EventClass | null,
  subclasses: boolean,
): void {
  const klass = (instance as { constructor?: unknown }).constructor;
  if (typeof klass !== "function" || subscribed.has(klass)) return;
  const map = subclasses ? unsubscribedBase : unsubscribed;
  let classes = map.get(type);
  if (classes === undefined) map.set(type, classes = new Set());
  if (!classes.has(klass)) {
    classes.add(klass);
    unsubscribedCount++;
  }
}

/** Called by `subscribe(instance)`: that class is in use, warn no more. */
export function noteSubscribed(klass: object): void {
  if (subscribed.has(klass)) return;
  subscribed.add(klass);
  for (const map of [unsubscribed, unsubscribedBase]) {
    for (const classes of map.values()) {
      if (classes.delete(klass)) unsubscribedCount--;
    }
  }
}

/** Classes that would handle `type` and have only unsubscribed instances. */
export function unsubscribedClassesFor(type: unknown): Set<object> {
  const result = new Set<object>();
  const add = (classes: Set<object> | undefined): void => {
    for (const c of classes ?? []) result.add(c);
  };
  add(unsubscribed.get(type as EventClass));
  add(unsubscribed.get(null));
  if (typeof type === "function") {
    for (const c of chainOf(type)) add(unsubscribedBase.get(c as EventClass));
  }
  return result;
}
