// Where @On keeps what it learned about a class, in the class's decorator
// metadata, and how subscribe() reads it back along the class chain. Also
// which classes with instance handlers were constructed but never
// subscribed, for the bus's "no handler" warning.
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

type Metadata = Record<PropertyKey, unknown> & {
  [HANDLERS]?: HandlerRecord[];
};

/**
 * Adds a record to this class's own metadata. An inherited list is copied,
 * never mutated, so a subclass never changes its parent's handlers.
 */
export function addHandlerRecord(
  metadata: DecoratorMetadataObject,
  record: HandlerRecord,
): void {
  const meta = metadata as Metadata;
  if (Object.hasOwn(meta, HANDLERS)) {
    meta[HANDLERS]!.push(record);
  } else {
    Object.defineProperty(meta, HANDLERS, {
      value: [record],
      enumerable: false,
      writable: true,
      configurable: true,
    });
  }
}

function ownRecords(klass: object): readonly HandlerRecord[] {
  if (!Object.hasOwn(klass, Symbol.metadata)) return [];
  const meta = (klass as { [Symbol.metadata]?: Metadata | null })[
    Symbol.metadata
  ];
  if (meta == null || !Object.hasOwn(meta, HANDLERS)) return [];
  return meta[HANDLERS]!;
}

/**
 * The `@On` records of a class and its ancestors, ancestors first, in
 * declaration order. A public method decorated again in a subclass for the
 * same event type appears once (the subclass's method runs, as `this[name]`
 * dispatch would pick it).
 */
export function collectHandlerRecords(
  klass: object,
  isStatic: boolean,
): HandlerRecord[] {
  const chain: object[] = [];
  for (
    let c: object | null = klass;
    c !== null && c !== Function.prototype;
    c = Object.getPrototypeOf(c)
  ) {
    chain.unshift(c);
  }
  const result: HandlerRecord[] = [];
  const seen = new Map<EventClass | null, Set<string | symbol>>();
  for (const c of chain) {
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

// Classes whose instances have @On methods for a type (null: @OnAny), that
// were constructed and never subscribed to any bus; `subclasses: true`
// handlers apart. Classes, not instances, so nothing keeps an instance alive.
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

/**
 * The classes whose instance methods would handle an event of class `type`
 * (`@On(type)`, `@On(Base, { subclasses: true })` for `type` or a parent of
 * it, `@OnAny()`), that have instances, none of them subscribed anywhere.
 */
export function unsubscribedClassesFor(type: unknown): Set<object> {
  const result = new Set<object>();
  const add = (classes: Set<object> | undefined): void => {
    if (classes !== undefined) { for (const c of classes) result.add(c); }
  };
  if (unsubscribed.size === 0 && unsubscribedBase.size === 0) return result;
  add(unsubscribed.get(type as EventClass));
  add(unsubscribed.get(null));
  if (typeof type === "function") {
    for (
      let c: object | null = type;
      c !== null && c !== Function.prototype;
      c = Object.getPrototypeOf(c)
    ) {
      add(unsubscribedBase.get(c as EventClass));
    }
  }
  return result;
}
