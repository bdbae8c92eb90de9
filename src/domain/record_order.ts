// The order events were recorded in, across aggregates, so that a Unit of
// Work publishes them as they happened; a WeakMap keeps it off the events.
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
