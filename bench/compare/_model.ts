// The application every variant runs: an Item aggregate that records
// ItemCreated, saved into an items table, and a handler that enqueues one
// job per event.
import {
  AggregateRoot,
  DomainEvent,
  EventBus,
  EventType,
  type JobQueue,
  On,
} from "../../mod.ts";

/** The event every variant publishes. */
@EventType("bench.item-created")
export class ItemCreated extends DomainEvent {
  constructor(
    readonly itemId: string,
    readonly name: string,
    readonly sample: number,
  ) {
    super();
  }
}

/** The aggregate. */
export class Item extends AggregateRoot {
  private constructor(readonly id: string, readonly name: string) {
    super();
  }
  static create(name: string, sample = 0): Item {
    const item = new Item(crypto.randomUUID(), name);
    item.recordEvent(new ItemCreated(item.id, name, sample));
    return item;
  }
}

/** The job data every queue variant writes for one event. */
export function jobData(e: ItemCreated): {
  itemId: string;
  name: string;
  sample: number;
} {
  return { itemId: e.itemId, name: e.name, sample: e.sample };
}

/** A bus whose one handler enqueues a keyed job per ItemCreated. */
export function enqueueingBus(jobs: JobQueue, queue: string): EventBus {
  class EnqueueJob {
    @On(ItemCreated)
    async enqueue(e: ItemCreated): Promise<void> {
      await jobs.enqueue(queue, jobData(e), { key: e.eventId });
    }
  }
  const bus = new EventBus();
  bus.subscribe(new EnqueueJob());
  return bus;
}

/** Creates the items table. */
export const ITEMS_DDL =
  "create table if not exists items (id uuid primary key, name text not null)";
