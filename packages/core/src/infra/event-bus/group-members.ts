import type { Subscription } from '../../ports/event-bus.js';
import { RecentIds, type SubscriberSet, type SubscriberSettings } from './subscriber-set.js';

/** One process's seat in a consumer group: it reads the group's share of events for its subscribers. */
export interface GroupMember {
  readonly subscribers: SubscriberSet;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The consumer-group members of a broker-backed bus, at most one per group in this process, shared by that
 * group's subscribers: the first subscriber of a group creates and starts the member, the last one to close
 * stops it so the broker hands its share to the other processes. A member still leaving (committing offsets,
 * releasing its lease) is waited for before the group gets a new one here. Each group keeps its recently handled
 * event ids across members, so a quick resubscribe still drops duplicates.
 */
export class GroupMembers<M extends GroupMember> {
  readonly #members = new Map<string, M>();
  readonly #leaving = new Map<string, Promise<void>>();
  readonly #recent = new Map<string, RecentIds>();
  readonly #create: (group: string, recent: RecentIds) => M;
  readonly #dedupeWindow: number;

  constructor(options: { readonly dedupeWindow: number; readonly create: (group: string, recent: RecentIds) => M }) {
    this.#create = options.create;
    this.#dedupeWindow = options.dedupeWindow;
  }

  /**
   * Adds a subscriber to the group's member, starting it if new. When the member cannot start, the subscriber
   * is removed (and a member created for it stopped) and `joinError` says why.
   */
  async subscribe(
    group: string,
    settings: SubscriberSettings,
    joinError: (err: unknown) => Error,
  ): Promise<Subscription> {
    let member = this.#members.get(group);
    while (!member && this.#leaving.has(group)) {
      await this.#leaving.get(group);
      member = this.#members.get(group);
    }
    const creating = !member;
    if (!member) {
      member = this.#create(group, this.#recentIds(group));
      this.#members.set(group, member);
    }
    // The subscriber is added before the member starts, so nothing arrives to an empty group.
    const remove = member.subscribers.add(settings);
    try {
      await member.start();
    } catch (err) {
      await remove();
      if (creating && this.#members.get(group) === member) {
        this.#members.delete(group);
        await member.stop().catch(() => {});
      }
      throw joinError(err);
    }
    return this.#subscription(group, member, remove);
  }

  /** Stops every member (once its start settled) and waits for those already leaving. */
  async closeAll(): Promise<void> {
    const members = [...this.#members.values()];
    this.#members.clear();
    await Promise.allSettled(members.map((m) => m.start()));
    await Promise.allSettled(members.map((m) => m.stop()));
    await Promise.allSettled([...this.#leaving.values()]);
  }

  #recentIds(group: string): RecentIds {
    let recent = this.#recent.get(group);
    if (!recent) {
      recent = new RecentIds(this.#dedupeWindow);
      this.#recent.set(group, recent);
    }
    return recent;
  }

  #subscription(group: string, member: M, remove: () => Promise<void>): Subscription {
    let closing: Promise<void> | undefined;
    return {
      group,
      close: () => {
        closing ??= (async () => {
          await remove();
          if (member.subscribers.size > 0 || this.#members.get(group) !== member) return;
          // The last subscriber left: the member leaves, so the broker gives its share to other processes.
          this.#members.delete(group);
          const leaving = member.stop().finally(() => {
            if (this.#leaving.get(group) === leaving) this.#leaving.delete(group);
          });
          this.#leaving.set(group, leaving);
          await leaving;
        })();
        return closing;
      },
    };
  }
}
