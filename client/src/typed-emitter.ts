/**
 * A small typed event emitter. Events are declared as a map from name to argument tuple, so a
 * listener's parameters are checked at compile time:
 *
 *   interface Events { command: [Command]; offline: [Error | undefined] }
 *   emitter.on('command', (c) => c.name);
 *
 * Unlike node:events, an `error` event with no listener is not thrown, and a listener that
 * throws does not break the emitter's caller: the exception is re-thrown on a later tick, so it
 * still surfaces as an uncaught exception, as a bug in a listener should.
 */
type Listener<A extends unknown[]> = (...args: A) => void;

export class TypedEmitter<E extends { [K in keyof E]: unknown[] }> {
  private readonly listeners = new Map<keyof E, Array<{ fn: Listener<never[]>; once: boolean }>>();

  on<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    return this.add(event, listener, false);
  }

  once<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    return this.add(event, listener, true);
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    const list = this.listeners.get(event);
    if (!list) return this;
    const index = list.findIndex((l) => l.fn === (listener as unknown as Listener<never[]>));
    if (index >= 0) list.splice(index, 1);
    return this;
  }

  listenerCount<K extends keyof E>(event: K): number {
    return this.listeners.get(event)?.length ?? 0;
  }

  /** Resolves with the arguments of the next `event`. */
  next<K extends keyof E>(event: K): Promise<E[K]> {
    return new Promise((resolve) => this.once(event, ((...args: E[K]) => resolve(args)) as Listener<E[K]>));
  }

  protected emit<K extends keyof E>(event: K, ...args: E[K]): boolean {
    const list = this.listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const entry of [...list]) {
      if (entry.once) this.off(event, entry.fn as unknown as Listener<E[K]>);
      try {
        (entry.fn as unknown as Listener<E[K]>)(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    return true;
  }

  private add<K extends keyof E>(event: K, listener: Listener<E[K]>, once: boolean): this {
    let list = this.listeners.get(event);
    if (!list) {
      list = [];
      this.listeners.set(event, list);
    }
    list.push({ fn: listener as unknown as Listener<never[]>, once });
    return this;
  }
}
