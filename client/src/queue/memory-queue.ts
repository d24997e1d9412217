import { DEFAULT_MAX_MESSAGES, type QueuedState, type StateQueue } from './types.js';

/** A bounded queue in memory: lost when the process ends. */
export class MemoryQueue implements StateQueue {
  protected entries: QueuedState[] = [];
  protected lastSeq = 0;
  private droppedCount = 0;
  readonly maxMessages: number;

  constructor(options: { maxMessages?: number } = {}) {
    this.maxMessages = checkBound(options.maxMessages ?? DEFAULT_MAX_MESSAGES);
  }

  open(): void {}

  get length(): number {
    return this.entries.length;
  }

  get dropped(): number {
    return this.droppedCount;
  }

  push(state: Omit<QueuedState, 'seq'>): { entry: QueuedState; dropped: QueuedState[] } {
    const entry: QueuedState = { seq: ++this.lastSeq, deviceId: state.deviceId, data: state.data, time: state.time };
    this.append(entry);
    this.entries.push(entry);
    return { entry, dropped: this.trim() };
  }

  /** Drops the oldest entries beyond the bound; they count as dropped and leave the queue. */
  protected trim(): QueuedState[] {
    if (this.entries.length <= this.maxMessages) return [];
    const dropped = this.entries.splice(0, this.entries.length - this.maxMessages);
    this.droppedCount += dropped.length;
    this.consumed();
    return dropped;
  }

  peek(limit: number): QueuedState[] {
    return this.entries.slice(0, limit);
  }

  ack(seq: number): void {
    // Acknowledgements come in order (one connection, one PUBACK per publish), so this is
    // nearly always the head.
    const index = this.entries.findIndex((e) => e.seq === seq);
    if (index < 0) return;
    this.entries.splice(index, 1);
    this.consumed();
  }

  close(): void {}

  /** Hook for the disk queue: write the entry before it is counted as queued. */
  protected append(_entry: QueuedState): void {}

  /** Hook for the disk queue: entries left the queue. */
  protected consumed(): void {}
}

export function checkBound(maxMessages: number): number {
  if (!Number.isInteger(maxMessages) || maxMessages < 1) {
    throw new RangeError(`queue.maxMessages must be a positive integer, got ${maxMessages}`);
  }
  return maxMessages;
}
