// Where @On keeps what it learned about a class, in the class's decorator
// metadata, and how subscribe() reads it back along the class chain.
import type { EventClass } from "./types.ts";

// Deno has Symbol.metadata natively; keep the module loadable elsewhere.
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for("Symbol.metadata");

/** One `@On(Type)` on one method. */
export interface HandlerRecord {
  readonly type: EventClass;
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
  const seen = new Map<EventClass, Set<string | symbol>>();
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
