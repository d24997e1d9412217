/**
 * The store-and-forward queue: every state goes through it, online or not, so states leave in
 * the order they were given. An entry leaves the queue when the server acknowledged it (QoS 1
 * PUBACK, which Gatehouse sends only once the state is stored) or when the bound drops it.
 */

/** A state waiting to be acknowledged. `time` is fixed when it is queued and kept on every resend. */
export interface QueuedState {
  /** Position in the queue; grows by one per state and never repeats within one queue. */
  seq: number;
  deviceId: string;
  data: Record<string, unknown>;
  /** Milliseconds since the epoch. */
  time: number;
}

export interface StateQueue {
  /** Loads what an earlier process left (disk queues); called once before any other method. */
  open(): void;
  /** Appends a state; when that exceeds the bound, the oldest entries are dropped and returned. */
  push(state: Omit<QueuedState, 'seq'>): { entry: QueuedState; dropped: QueuedState[] };
  /** The oldest `limit` entries not yet acknowledged, oldest first. */
  peek(limit: number): QueuedState[];
  /** Removes an entry once the server acknowledged it; unknown or already removed seqs are ignored. */
  ack(seq: number): void;
  /** Entries not yet acknowledged. */
  readonly length: number;
  /** Entries dropped by the bound since this queue was opened. */
  readonly dropped: number;
  readonly maxMessages: number;
  /** Releases files and locks. Entries not acknowledged stay for the next open (disk queues). */
  close(): void;
}

export interface QueueOptions {
  /** `disk` (default): survives a process restart. `memory`: lost when the process ends. */
  type?: 'disk' | 'memory';
  /** Directory of a disk queue (one directory per device or gateway). Default `./gatehouse-queue/DEVICE_ID`. */
  dir?: string;
  /** Bound: beyond this many entries the oldest are dropped (and counted). Default 10000. */
  maxMessages?: number;
  /** fsync the journal after every append (survives power loss, not only a process crash). Default false. */
  fsync?: boolean;
}

export const DEFAULT_MAX_MESSAGES = 10_000;
