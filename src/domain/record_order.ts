// The order in which events were recorded, across aggregates. A Unit of Work
// pulls each aggregate's events separately; this number lets it publish the
// events of several aggregates (and its explicit events) in the order they
// happened. A WeakMap keeps it off the event objects and lets them be
// collected.

const order = new WeakMap<object, number>();
let last = 0;

/** Gives `event` the next number, unless it already has one. */
export function stampRecordOrder(event: object): void {
  if (!order.has(event)) order.set(event, ++last);
}

/** The number `event` was given, or `Infinity` when it has none. */
export function recordOrderOf(event: object): number {
  return order.get(event) ?? Infinity;
}
