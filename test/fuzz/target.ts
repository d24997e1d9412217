/**
 * The server under fuzz: the real CLI in a child process (bench/gatehouse-process.ts). It runs
 * in a data directory of its own; after a crash it is started again on the same directory and
 * ports, so clients reconnect to where they were and the stored data carries on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type GatehouseProcess, startGatehouseProcess } from '../../bench/gatehouse-process.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines the server wrote. */
  output: string;
}

export class Target {
  private process!: GatehouseProcess;
  private readonly dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-fuzz-'));
  private stopping = false;
  /** Increases with every start: work begun under one epoch and failing under another was cut by a crash. */
  epoch = 0;
  mqttPort = 0;
  httpPort = 0;
  adminToken = '';
  private exitListener: ((exit: Exit) => void) | null = null;
  /** Should the fuzzer itself die, its data directory must not stay behind (the server is stopped by its own hook). */
  private readonly cleanUp = () => rmSync(this.dataDir, { recursive: true, force: true });

  constructor() {
    process.once('exit', this.cleanUp);
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }
  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.mqttPort}`;
  }
  get alive(): boolean {
    return this.running;
  }
  private running = false;

  /** Called once for each exit the fuzzer did not ask for. */
  onExit(listener: (exit: Exit) => void): void {
    this.exitListener = listener;
  }

  async start(): Promise<void> {
    const first = this.epoch === 0;
    const proc = await startGatehouseProcess({
      dataDir: this.dataDir,
      ...(first ? {} : { mqttPort: this.mqttPort, httpPort: this.httpPort, adminToken: this.adminToken }),
      outputLines: 400,
      serveArgs: ['--log-level', 'error'],
    });
    this.process = proc;
    this.epoch++;
    this.running = true;
    this.mqttPort = proc.mqttPort;
    this.httpPort = Number(new URL(proc.httpUrl).port);
    this.adminToken = proc.adminToken;
    const epoch = this.epoch;
    void proc.exited.then(({ code, signal }) => {
      // Already gone: this only drops the process's clean-up hook (the data directory is ours).
      void proc.stop();
      if (this.epoch !== epoch) return;
      this.running = false;
      if (!this.stopping) this.exitListener?.({ code, signal, output: proc.output() });
    });
  }

  /** The server's recent output (errors it logged), for reports. */
  output(): string {
    return this.process.output();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.running) await this.process.stop(10_000);
    process.off('exit', this.cleanUp);
    this.cleanUp();
  }
}
