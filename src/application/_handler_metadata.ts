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

/** The class and its ancestors, nearest first. */
export function chainOf(klass: object | null): object[] {
  return klass === null || klass === Function.prototype
    ? []
    : [klass, ...chainOf(Object.getPrototypeOf(klass))];
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
  for (const c of chainOf(klass).reverse()) {
    const meta = Object.hasOwn(c, Symbol.metadata)
      ? (c as { [Symbol.metadata]?: Metadata | null })[Symbol.metadata]
      : undefined;
    if (meta == null || !Object.hasOwn(meta, HANDLERS)) continue;
    for (const record of meta[HANDLERS]!) {
      if (
        record.isStatic === isStatic && (record.isPrivate ||
          !result.some((r) => r.type === record.type && r.name === record.name))
      ) result.push(record);
    }
  }
  return result;
}

// Type (null: @OnAny) → the classes with @On instance methods for it that
// were constructed and never subscribed, each with its `subclasses` flag.
// Classes, not instances, so nothing keeps an instance alive.
const unsubscribed = new Map<EventClass | null, Map<object, boolean>>();
const subscribed = new WeakSet<object>();

/** Whether any class is waiting: the hot path asks only this. */
export function hasUnsubscribed(): boolean {
  return unsubscribed.size !== 0;
}

/** Called (by the decorator's initializer) when `instance` is constructed. */
export function noteConstructed(
  instance: object,
  type: EventClass | null,
  subclasses: boolean,
): void {
  const klass = (instance as { constructor?: unknown }).constructor;
  if (typeof klass !== "function" || subscribed.has(klass)) return;
  const classes = unsubscribed.get(type) ?? new Map<object, boolean>();
  unsubscribed.set(
    type,
    classes.set(klass, subclasses || !!classes.get(klass)),
  );
}

/** Called by `subscribe(instance)`: that class is in use, warn no more. */
export function noteSubscribed(klass: object): void {
  subscribed.add(klass);
  for (const [type, classes] of unsubscribed) {
    if (classes.delete(klass) && classes.size === 0) unsubscribed.delete(type);
  }
}

/** Classes that would handle `type` and have only unsubscribed instances. */
export function unsubscribedClassesFor(type: unknown): Set<object> {
  const result = new Set(unsubscribed.get(null)?.keys());
  const chain = typeof type === "function" ? chainOf(type) : [type];
  chain.forEach((c, distance) => {
    for (const [klass, subclasses] of unsubscribed.get(c as EventClass) ?? []) {
      if (distance === 0 || subclasses) result.add(klass);
    }
  });
  return result;
}
