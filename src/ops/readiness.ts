/**
 * Readiness (docs/operations.md, "/ready"): whether this server should be sent traffic now. It
 * is not while it starts or shuts down, while a listener is not accepting connections, while
 * the database cannot take a write, and while the last group commit has failed.
 */
import type { Logger } from '../logger.js';
import type { Store } from '../store/types.js';

export const UNREADY_CODES = [
  'starting',
  'shuttingDown',
  'listenerDown',
  'databaseNotWritable',
  'lastCommitFailed',
  'clusterUnavailable',
] as const;
export type UnreadyCode = (typeof UNREADY_CODES)[number];

/** One reason the server is not ready: a fixed code and a sentence. Causes go to the operator log only. */
export interface UnreadyReason {
  code: UnreadyCode;
  message: string;
}

interface Listener {
  name: string;
  server: { readonly listening: boolean };
}

export class Readiness {
  private phase: 'starting' | 'running' | 'stopping' = 'starting';
  private readonly listeners: Listener[] = [];
  /** Whether the last database check failed: its cause is logged once, when it starts failing. */
  private databaseFailing = false;

  constructor(
    private readonly parts: {
      store: Pick<Store, 'checkWritable'>;
      writes: { readonly lastCommitFailed: boolean };
      logger: Logger;
      /** The nodes sharing Redis, when this is one of them: why it cannot work with them now, or null. */
      cluster?: { problem(): string | null };
    },
  ) {}

  /** A listener that must be accepting connections (`http`, `mqtt`, `mqtts`). */
  watchListener(name: string, server: { readonly listening: boolean }): void {
    this.listeners.push({ name, server });
  }

  /** Start-up is complete: every listener is up and start-up's writes are done. */
  markRunning(): void {
    if (this.phase === 'starting') this.phase = 'running';
  }

  /** Shutdown has begun; the server is not ready again. */
  markStopping(): void {
    this.phase = 'stopping';
  }

  /** Why the server is not ready; empty when it is. Checks the database while running. */
  async check(): Promise<UnreadyReason[]> {
    if (this.phase === 'starting') return [{ code: 'starting', message: 'the server is starting' }];
    if (this.phase === 'stopping') return [{ code: 'shuttingDown', message: 'the server is shutting down' }];
    const reasons: UnreadyReason[] = [];
    for (const { name, server } of this.listeners) {
      if (!server.listening) {
        reasons.push({ code: 'listenerDown', message: `the ${name} listener is not accepting connections` });
      }
    }
    if (!(await this.databaseWritable())) {
      reasons.push({
        code: 'databaseNotWritable',
        message: 'the database cannot take a write (the cause is in the operator log)',
      });
    }
    const clusterProblem = this.parts.cluster?.problem() ?? null;
    if (clusterProblem !== null) reasons.push({ code: 'clusterUnavailable', message: clusterProblem });
    if (this.parts.writes.lastCommitFailed) {
      reasons.push({
        code: 'lastCommitFailed',
        message: 'the last group commit failed (the cause is in the operator log); the next one to succeed clears this',
      });
    }
    return reasons;
  }

  private async databaseWritable(): Promise<boolean> {
    const log = this.parts.logger;
    try {
      await this.parts.store.checkWritable();
    } catch (err) {
      if (!this.databaseFailing) log.error({ event: 'databaseNotWritable', err }, 'the database cannot take a write');
      this.databaseFailing = true;
      return false;
    }
    if (this.databaseFailing) log.info({ event: 'databaseWritable' }, 'the database takes writes again');
    this.databaseFailing = false;
    return true;
  }
}
