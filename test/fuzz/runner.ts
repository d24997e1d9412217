/**
 * The fuzz run: starts the real server, seeds the fleet, lets fast-check generate cases and
 * sends them with many in flight, checks the oracle at checkpoints, and finally replays each
 * failure alone so fast-check can shrink it to a minimal case. Shared by `npm run fuzz` and the
 * Vitest test.
 *
 * fast-check drives generation: its property only hands each case to the pipeline and returns,
 * so run i of seed S is case i, and `{seed: S, path: "i"}` replays it exactly.
 */
import fc from 'fast-check';
import { fuzzCase } from './arbitraries.js';
import {
  describeCase,
  type FuzzCase,
  type HttpRequest,
  type PublishCase,
  type RestCase,
  renderFilter,
  renderPayload,
  renderRest,
  renderTopic,
  type SubscribeCase,
} from './cases.js';
import { seedFleet } from './fleet.js';
import { HttpClient, type HttpOutcome } from './http-client.js';
import { type CustomEntry, Ledger } from './ledger.js';
import {
  appOfClient,
  CLIENT_ROLES,
  type ClientRole,
  type DeviceRole,
  type Fleet,
  mayActFor,
  mayPublishCustom,
  mayReceiveCustom,
  type TokenRole,
  topicMatches,
} from './model.js';
import { MqttPool, type Received } from './mqtt-pool.js';
import { type Corruption, checkConsistency, compareSnapshots, type Snapshot, takeSnapshot } from './oracle.js';
import { type Exit, Target } from './target.js';

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** Cases in flight at once (default 128). */
  concurrency?: number;
  /** Cases between oracle checks (default: the smaller of 20,000 and cases / 2). */
  checkpointEvery?: number;
  /** Time for replaying and shrinking failures, in all (default 60 s). */
  shrinkMs?: number;
  /** Progress lines (none by default). */
  log?: (line: string) => void;
}

export type FailureKind = 'crash' | '5xx' | 'corruption' | 'leak' | 'timeout';

export interface Failure {
  kind: FailureKind;
  /** What went wrong, in one line; failures with the same signature are counted together. */
  signature: string;
  count: number;
  caseIndex?: number;
  case?: FuzzCase;
  request?: string;
  response?: string;
  detail?: string;
  /** The minimal case fast-check shrank the failure to, when it reproduced alone. */
  shrunk?: { case: FuzzCase; request?: string; response: string; shrinks: number };
  /** For a crash or 5xx that did not happen again when replayed alone. */
  notReproduced?: true;
  /** For a crash: the cases in flight when the server died, then the last ones sent (index: case). */
  suspects?: string[];
}

export interface FuzzResult {
  seed: number;
  cases: number;
  mqtt: number;
  subscribe: number;
  rest: number;
  seconds: number;
  casesPerSecond: number;
  crashes: number;
  serverErrors: number;
  corruptions: number;
  leaks: number;
  timeouts: number;
  failures: Failure[];
  /** How often the server closed an MQTT connection (protocol violations, restarts). */
  mqttCloses: number;
  statuses: Record<string, number>;
  storedStates: number;
  checkpoints: number;
  /** Set when the run ended early (the server could not be restarted). */
  aborted?: string;
}

const RECENT = 64;

class Slots {
  private free: number;
  private waiting: Array<() => void> = [];
  private idle: Array<() => void> = [];
  constructor(private readonly size: number) {
    this.free = size;
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else {
      this.free++;
      if (this.free === this.size) for (const r of this.idle.splice(0)) r();
    }
  }
  drained(): Promise<void> {
    if (this.free === this.size) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}

const adminAuth = (c: RestCase) => c.auth === 'admin' || c.auth === 'adminLowerCase' || c.auth === 'adminPadded';

export class FuzzRun {
  private readonly target = new Target();
  private fleet!: Fleet;
  private http!: HttpClient;
  private pool!: MqttPool;
  private readonly ledger = new Ledger();
  private baseline!: Snapshot;
  private readonly failures = new Map<string, Failure>();
  private readonly counts: Record<FailureKind, number> = { crash: 0, '5xx': 0, corruption: 0, leak: 0, timeout: 0 };
  private readonly statuses: Record<string, number> = {};
  private readonly stats = { mqtt: 0, subscribe: 0, rest: 0, checkpoints: 0 };
  private readonly inFlight = new Map<number, FuzzCase>();
  /** Filters each client was granted, with the case that subscribed (for leak reports). */
  private readonly subscriptions = new Map<ClientRole, Array<{ filter: string; caseIndex: number }>>();
  private readonly recent: Array<[number, FuzzCase]> = [];
  private readonly crashes: Array<{ exit: Exit; suspects: Array<[number, FuzzCase]>; signature: string }> = [];
  /** Resolves while the server is up; replaced by a pending promise during a restart. */
  private up: Promise<void> = Promise.resolve();
  private aborted: string | undefined;
  private readonly concurrency: number;
  private readonly checkpointEvery: number;
  private readonly log: (line: string) => void;
  /** While replaying alone: the crash of the case being replayed is expected, not a new finding. */
  private replaying = false;
  private lastExit: Exit | null = null;
  private syncs = 0;

  constructor(private readonly options: FuzzOptions) {
    this.concurrency = options.concurrency ?? 128;
    this.checkpointEvery = options.checkpointEvery ?? Math.max(1000, Math.min(20_000, Math.ceil(options.cases / 2)));
    this.log = options.log ?? (() => {});
  }

  async run(): Promise<FuzzResult> {
    const { seed, cases } = this.options;
    try {
      await this.setUp();
      const started = performance.now();
      let lastLog = started;
      let next = 0;
      let abortThrown = false;
      const slots = new Slots(this.concurrency);
      const details = await fc.check(
        fc.asyncProperty(fuzzCase, async (c) => {
          if (this.aborted) {
            // Thrown once, so that fast-check stops generating; its shrink attempts then pass at once.
            if (abortThrown) return true;
            abortThrown = true;
            throw new Error('run aborted');
          }
          const index = next++;
          try {
            if (index > 0 && index % this.checkpointEvery === 0) {
              await slots.drained();
              await this.checkpoint();
            }
            await slots.acquire();
            await this.up;
          } catch (err) {
            this.aborted ??= (err as Error).stack ?? String(err);
            return true;
          }
          void this.execute(index, c).finally(() => slots.release());
          const now = performance.now();
          if (now - lastLog > 5000) {
            lastLog = now;
            this.log(this.progress(index + 1, (now - started) / 1000));
          }
          return true;
        }),
        { seed, numRuns: cases },
      );
      if (details.failed && !this.aborted)
        this.aborted = `fast-check: ${String(details.errorInstance ?? 'property failed')}`;
      await slots.drained();
      const seconds = (performance.now() - started) / 1000;
      if (!this.aborted) await this.checkpoint().catch((err: Error) => (this.aborted = err.stack ?? String(err)));
      this.log(this.progress(next, seconds));
      if (!this.aborted) await this.replayFailures(this.options.shrinkMs ?? 60_000);
      return this.result(next, seconds);
    } finally {
      await this.tearDown();
    }
  }

  private progress(done: number, seconds: number): string {
    const c = this.counts;
    return (
      `${done} cases in ${seconds.toFixed(1)} s (${Math.round(done / Math.max(seconds, 0.001))}/s): ` +
      `${c.crash} crashes, ${c['5xx']} 5xx, ${c.corruption} corrupted states, ${c.leak} leaks, ${c.timeout} timeouts`
    );
  }

  private async setUp(): Promise<void> {
    this.target.onExit((exit) => this.onCrash(exit));
    await this.target.start();
    this.http = new HttpClient(this.target.httpUrl, this.concurrency);
    this.fleet = await seedFleet(this.target.httpUrl, this.target.adminToken);
    this.pool = new MqttPool(
      () => this.target.mqttUrl,
      this.fleet,
      (m) => this.onMessage(m),
    );
    await this.pool.connectAll();
    this.baseline = await takeSnapshot(this.http, this.fleet);
    this.recordCorruptions(checkConsistency(this.fleet, this.baseline), 'initial snapshot');
  }

  private async tearDown(): Promise<void> {
    await this.pool?.stop();
    this.http?.close();
    await this.target.stop();
  }

  // Crashes

  private onCrash(exit: Exit): void {
    this.lastExit = exit;
    let restarted!: () => void;
    this.up = new Promise((resolve) => {
      restarted = resolve;
    });
    if (!this.replaying) {
      const suspects: Array<[number, FuzzCase]> = [...this.inFlight.entries(), ...[...this.recent].reverse()];
      const signature = crashSignature(exit);
      this.crashes.push({ exit, suspects, signature });
      this.counts.crash++;
      this.addFailure({
        kind: 'crash',
        signature,
        count: 1,
        detail: `exit code ${exit.code}, signal ${exit.signal}; ${suspects.length} cases in flight or just sent`,
        response: tail(exit.output, 30),
        suspects: suspects.slice(0, 12).map(([i, c]) => `${i}: ${clip(describeCase(c), 300)}`),
      });
      this.log(`server crashed (${signature}); restarting`);
    }
    void (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.target.start();
          restarted();
          return;
        } catch (err) {
          if (attempt >= 3) {
            this.aborted ??= `the server could not be restarted: ${(err as Error).message}`;
            // Clients waiting to reconnect give up, so that the cases in flight end.
            this.pool.abort();
            restarted();
            return;
          }
        }
      }
    })();
  }

  // Executing cases

  private async execute(index: number, c: FuzzCase): Promise<void> {
    this.inFlight.set(index, c);
    try {
      if (c.kind === 'rest') await this.executeRest(index, c);
      else if (c.kind === 'publish') await this.executePublish(index, c);
      else await this.executeSubscribe(index, c);
    } catch (err) {
      // A case that throws is a bug of the harness, not of the server: stop the run.
      this.aborted ??= `harness error on case ${index}: ${(err as Error).stack ?? String(err)}`;
    } finally {
      this.inFlight.delete(index);
      this.recent.push([index, c]);
      if (this.recent.length > RECENT) this.recent.shift();
    }
  }

  private async executeRest(index: number, c: RestCase): Promise<HttpOutcome> {
    this.stats.rest++;
    const epoch = this.target.epoch;
    const req = renderRest(c, this.fleet, this.fleet.baseTime);
    const outcome = await this.http.request(req);
    const statePost = c.route === 'state' && c.method === 'POST';
    if (outcome.ok) {
      const { status } = outcome.answer;
      this.statuses[status] = (this.statuses[status] ?? 0) + 1;
      if (status >= 500) {
        this.counts['5xx']++;
        const failure = this.addFailure({
          kind: '5xx',
          signature: `${status} ${c.method} ${c.route}`,
          count: 1,
          caseIndex: index,
          case: c,
          request: describeRequest(req),
          response: `${status} ${outcome.answer.body}`,
        });
        // The server logs the cause after it answered: look for it a moment later.
        if (failure.caseIndex === index) {
          setTimeout(() => {
            const cause = this.serverError(req.path);
            if (cause) failure.detail = `the server logged ${cause}`;
          }, 500);
        }
      }
      if (statePost && status === 200) this.recordRestState(index, c, req, true);
    } else if (outcome.kind === 'timeout') {
      this.counts.timeout++;
      this.addFailure({
        kind: 'timeout',
        signature: `no answer within 5 s: ${c.method} ${c.route}`,
        count: 1,
        caseIndex: index,
        case: c,
        request: describeRequest(req),
      });
      if (statePost) this.recordRestState(index, c, req, false);
    } else if (outcome.kind === 'failed') {
      const key = epoch === this.target.epoch && this.target.alive ? 'connection closed' : 'cut by crash';
      this.statuses[key] = (this.statuses[key] ?? 0) + 1;
      // Sent but unanswered: it may have been stored.
      if (statePost) this.recordRestState(index, c, req, false);
    } else {
      this.statuses['not sendable'] = (this.statuses['not sendable'] ?? 0) + 1;
    }
    return outcome;
  }

  /** The error the server logged for a failed request to `path`, if it is still in its output. */
  private serverError(path: string): string | undefined {
    const lines = this.target.output().split('\n').reverse();
    for (const line of lines) {
      if (!line.startsWith('stderr: {')) continue;
      try {
        const entry = JSON.parse(line.slice('stderr: '.length)) as {
          url?: string;
          err?: { type?: string; message?: string };
        };
        if (entry.url === path && entry.err) return `${entry.err.type}: ${entry.err.message}`;
      } catch {
        // not a log line
      }
    }
    return undefined;
  }

  private recordRestState(index: number, c: RestCase, req: HttpRequest, accepted: boolean): void {
    const target = this.fleet.devices[c.device as DeviceRole];
    const admin = adminAuth(c);
    const actorRole = c.auth.startsWith('token:') ? (c.auth.slice('token:'.length) as TokenRole) : undefined;
    const actor = actorRole ? this.fleet.devices[actorRole] : undefined;
    const allowed =
      target !== undefined && c.app === target.app && (admin || (actor !== undefined && mayActFor(actor, target)));
    if (allowed) {
      this.ledger.recordState(target.role, admin ? 'api' : actor!.id, req.body ?? Buffer.alloc(0), index);
    } else if (accepted) {
      this.counts.corruption++;
      this.addFailure({
        kind: 'corruption',
        signature: `state accepted for ${c.device} in ${c.app} with ${c.auth}, which may not report it`,
        count: 1,
        caseIndex: index,
        case: c,
        request: describeRequest(req),
      });
    }
  }

  private async executePublish(index: number, c: PublishCase): Promise<void> {
    this.stats.mqtt++;
    const topic = renderTopic(c.topic, this.fleet);
    const payload = renderPayload(c.payload, this.fleet, this.fleet.baseTime);
    this.recordPublish(index, c, topic, payload);
    const outcome = await this.pool.get(c.client).publish(topic, payload, c.qos, c.retain);
    this.statuses[`mqtt ${outcome}`] = (this.statuses[`mqtt ${outcome}`] ?? 0) + 1;
    if (outcome === 'timeout') {
      this.counts.timeout++;
      this.addFailure({
        kind: 'timeout',
        signature: `no PUBACK within 5 s and the connection stayed open: ${JSON.stringify(abbreviateTopic(topic, this.fleet))}`,
        count: 1,
        caseIndex: index,
        case: c,
      });
    }
  }

  /** What a publish may change, in the ledger, before it is sent. */
  private recordPublish(index: number, c: PublishCase, topic: string, payload: Buffer): void {
    const { client, retain } = c;
    const m = /^losant\/([0-9a-f]{24})\/state$/.exec(topic);
    if (m?.[1]) {
      const role = this.fleet.roleOf.get(m[1]);
      const actor = this.fleet.devices[client];
      if (role && mayActFor(actor, this.fleet.devices[role])) this.ledger.recordState(role, actor.id, payload, index);
      return;
    }
    this.ledger.recordCustom(topic, payload, appOfClient(this.fleet, client), mayPublishCustom(client, topic), retain, {
      index,
      case: c,
    });
  }

  private async executeSubscribe(index: number, c: SubscribeCase): Promise<void> {
    this.stats.subscribe++;
    const filters = c.filters.map((f) => renderFilter(f, this.fleet));
    const connection = this.pool.get(c.client);
    // Noted before sending: retained messages arrive before the SUBACK.
    const list = this.subscriptions.get(c.client) ?? [];
    const mine = filters.map((filter) => ({ filter, caseIndex: index }));
    list.push(...mine);
    this.subscriptions.set(c.client, list.slice(-200));
    const granted = await connection.subscribe(filters, c.qos);
    const key = Array.isArray(granted) ? 'mqtt subscribed' : `mqtt subscribe ${granted}`;
    this.statuses[key] = (this.statuses[key] ?? 0) + 1;
    const refused = mine.filter((_, i) => !Array.isArray(granted) || (granted[i] ?? 128) >= 128);
    this.subscriptions.set(
      c.client,
      (this.subscriptions.get(c.client) ?? []).filter((s) => !refused.includes(s)),
    );
    if (c.unsubscribe && Array.isArray(granted)) await connection.unsubscribe(filters);
  }

  // Leaks: what a client receives must be meant for it.

  private onMessage(m: Received): void {
    // While failures are replayed, leaks already found would only be counted again.
    if (this.replaying) return;
    const leak = this.leakOf(m);
    if (!leak) return;
    this.counts.leak++;
    const subscriptions = (this.subscriptions.get(m.client) ?? []).filter((s) => topicMatches(s.filter, m.topic));
    this.addFailure({
      kind: 'leak',
      signature: `a client of application ${this.fleet.devices[m.client].app} received ${leak.why}`,
      count: 1,
      detail:
        `${m.client} received topic ${JSON.stringify(abbreviateTopic(m.topic, this.fleet))}, payload ${clip(m.payload.toString('utf8'), 200)}${m.retain ? ' (retained)' : ''}; ` +
        `granted subscriptions of ${m.client} matching it: ${
          subscriptions.map((s) => `${JSON.stringify(s.filter)} (case ${s.caseIndex})`).join(', ') || 'none'
        }`,
      ...(leak.published && leak.published.caseIndex >= 0
        ? { caseIndex: leak.published.caseIndex, case: leak.published.case as FuzzCase }
        : {}),
    });
  }

  /** Why a client should not have received a message, or undefined when it may. */
  private leakOf(m: Received): { why: string; published?: CustomEntry } | undefined {
    const client = this.fleet.devices[m.client];
    if (m.topic.startsWith('$')) return { why: 'a message on a $ topic' };
    if (m.topic === 'losant' || m.topic.startsWith('losant/')) {
      const platform = /^losant\/([^/]*)\/([^/]*)$/.exec(m.topic);
      const role = platform?.[1] ? this.fleet.roleOf.get(platform[1]) : undefined;
      if (platform?.[2] === 'command' && role && mayActFor(client, this.fleet.devices[role])) return undefined;
      if (platform?.[2] === 'error' && platform[1] === client.id) return undefined;
      return {
        why: platform?.[2] === 'command' ? 'a command of a device it may not act for' : 'a message on a platform topic',
      };
    }
    if (!mayReceiveCustom(m.client, m.topic)) {
      return { why: 'a custom-topic message on a topic its key does not let it subscribe to' };
    }
    const published = this.ledger.customPublishers(m.topic, m.payload);
    if (!published) return { why: 'a custom-topic message nobody published' };
    if (published.apps.has(client.app)) return undefined;
    if (published.apps.size > 0) {
      return { why: `a custom-topic message published in application ${[...published.apps].join(', ')}`, published };
    }
    return { why: 'a custom-topic message from a client whose key forbids publishing there', published };
  }

  // Checkpoints

  /** Waits until everything sent so far is stored, then compares a new snapshot with the last one. */
  private async checkpoint(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.up;
        await this.quiesce();
        const snap = await takeSnapshot(this.http, this.fleet);
        this.stats.checkpoints++;
        const found = [
          ...compareSnapshots(this.fleet, this.baseline, snap, this.ledger),
          ...checkConsistency(this.fleet, snap),
        ];
        this.recordCorruptions(found, `checkpoint ${this.stats.checkpoints}`);
        this.baseline = snap;
        this.ledger.rotate();
        return;
      } catch (err) {
        // A crash during the checkpoint: try again on the restarted server.
        if (attempt >= 3 || this.aborted) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Every publish sent so far has been ingested and committed: each client gets two QoS 1
   * publishes acknowledged in turn (the broker reads a client's next packets only after the
   * earlier ones were handled), then a state posted over REST commits after everything queued.
   */
  private async quiesce(): Promise<void> {
    await Promise.all(CLIENT_ROLES.map((role) => this.syncClient(role)));
    await this.barrier();
  }

  /** Two QoS 1 publishes acknowledged in turn: everything the client sent before has been handled. */
  private async syncClient(role: ClientRole): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const topic = 'fuzz/sync';
      const payload = Buffer.from(`sync ${this.syncs++}`);
      this.ledger.recordCustom(topic, payload, appOfClient(this.fleet, role), mayPublishCustom(role, topic), false, {
        index: -1,
      });
      await this.pool.get(role).publish(topic, payload, 1, false);
    }
  }

  private async barrier(): Promise<void> {
    const outcome = await this.http.request({
      method: 'POST',
      path: `/applications/${this.fleet.barrierApp}/devices/${this.fleet.barrierDevice}/state`,
      headers: { authorization: `Bearer ${this.fleet.adminToken}`, 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ data: { n: this.syncs++ } })),
    });
    if (!outcome.ok || outcome.answer.status !== 200) {
      throw new Error(`barrier state was not stored: ${JSON.stringify(outcome)}`);
    }
  }

  private recordCorruptions(found: Corruption[], where: string): void {
    for (const c of found) {
      this.counts.corruption++;
      this.addFailure({
        kind: 'corruption',
        // One signature for all devices: the same fault in 14 devices is one finding.
        signature: c.what.replace(/\d{4}-\d{2}-\d{2}T[\d:.]+Z/g, 'T'),
        count: 1,
        detail: `${c.device ? `device ${c.device}, ` : ''}found at ${where}; before ${clip(JSON.stringify(c.before))}; after ${clip(JSON.stringify(c.after))}${
          c.cases?.length ? `; recent cases writing ${c.device}: ${c.cases.join(', ')}` : ''
        }`,
      });
    }
  }

  /** Records a failure, or counts it again under the first one with its signature (returned). */
  private addFailure(f: Failure): Failure {
    const known = this.failures.get(`${f.kind} ${f.signature}`);
    if (known) {
      known.count++;
      return known;
    }
    this.failures.set(`${f.kind} ${f.signature}`, f);
    return f;
  }

  // Replaying and shrinking

  private async replayFailures(budgetMs: number): Promise<void> {
    const deadline = Date.now() + budgetMs;
    this.replaying = true;
    try {
      for (const crash of this.crashes) {
        if (Date.now() > deadline) break;
        const failure = this.failures.get(`crash ${crash.signature}`);
        if (!failure || failure.shrunk || failure.notReproduced) continue;
        await this.replayCrash(crash.suspects, failure, deadline);
      }
      for (const failure of this.failures.values()) {
        if (Date.now() > deadline) break;
        if (failure.kind !== '5xx' || failure.caseIndex === undefined) continue;
        await this.shrink(failure, failure.caseIndex, async (c) => this.failsAlone(c), deadline);
      }
    } finally {
      this.replaying = false;
    }
  }

  /** A case sent with nothing else in flight, and what became of it. */
  private async runAlone(
    c: FuzzCase,
  ): Promise<{ request?: string; answer: string; crashed: boolean; status?: number }> {
    await this.up;
    const epoch = this.target.epoch;
    const dead = () => this.target.epoch !== epoch || !this.target.alive;
    const exited = new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (dead()) {
          clearInterval(check);
          resolve();
        }
      }, 10);
      setTimeout(() => {
        clearInterval(check);
        resolve();
      }, 5000);
    });
    let request: string | undefined;
    let answer: string;
    let status: number | undefined;
    if (c.kind === 'rest') {
      const req = renderRest(c, this.fleet, this.fleet.baseTime);
      request = describeRequest(req);
      const outcome = await this.http.request(req);
      if (outcome.ok) status = outcome.answer.status;
      answer = outcome.ok ? `${outcome.answer.status} ${outcome.answer.body}` : `${outcome.kind}: ${outcome.error}`;
    } else if (c.kind === 'publish') {
      const topic = renderTopic(c.topic, this.fleet);
      request = `PUBLISH ${clip(topic, 200)} QoS ${c.qos}${c.retain ? ' retained' : ''}: ${clip(
        renderPayload(c.payload, this.fleet, this.fleet.baseTime).toString('utf8'),
        300,
      )}`;
      answer = await this.pool
        .get(c.client)
        .publish(topic, renderPayload(c.payload, this.fleet, this.fleet.baseTime), c.qos, c.retain);
      // Everything this client sent before a sync is handled once the sync is acknowledged.
      await this.syncClient(c.client);
    } else {
      const filters = c.filters.map((f) => renderFilter(f, this.fleet));
      request = `SUBSCRIBE ${filters.map((f) => clip(f, 100)).join(', ')} QoS ${c.qos}`;
      answer = JSON.stringify(await this.pool.get(c.client).subscribe(filters, c.qos));
    }
    // The case has had its chance once a state posted after it is committed, or the server died.
    await Promise.race([exited, this.barrier().catch(() => {})]);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    const crashed = dead();
    if (crashed) {
      await this.up;
      answer = `the server exited:\n${tail(this.lastExit?.output ?? '', 30)}`;
    }
    return { ...(request ? { request } : {}), answer, crashed, ...(status !== undefined ? { status } : {}) };
  }

  /** A crash or 5xx of the case sent alone, or undefined. */
  private async failsAlone(c: FuzzCase): Promise<{ request?: string; response: string } | undefined> {
    const r = await this.runAlone(c);
    if (!r.crashed && (r.status ?? 0) < 500) return undefined;
    return { ...(r.request ? { request: r.request } : {}), response: r.answer };
  }

  /** Which of the cases around a crash crashes the server on its own; then shrinks it. */
  private async replayCrash(suspects: Array<[number, FuzzCase]>, failure: Failure, deadline: number): Promise<void> {
    const crashes = async (c: FuzzCase) => {
      const r = await this.runAlone(c);
      return r.crashed ? { ...(r.request ? { request: r.request } : {}), response: r.answer } : undefined;
    };
    for (const [tried, [index, c]] of suspects.entries()) {
      if (Date.now() > deadline) {
        failure.detail += `; replayed ${tried} of the ${suspects.length} cases alone before the time ran out, none crashed it`;
        return;
      }
      if (!(await crashes(c))) continue;
      failure.caseIndex = index;
      failure.case = c;
      await this.shrink(failure, index, crashes, deadline);
      return;
    }
    failure.notReproduced = true;
  }

  /**
   * `npm run fuzz -- --replay INDEX`: case INDEX of the seed, alone on a fresh server, with its
   * answer; shrunk when it crashes the server or gets a 5xx.
   */
  async replay(index: number): Promise<string> {
    try {
      await this.setUp();
      this.replaying = true;
      const lines: string[] = [];
      const failure: Failure = { kind: '5xx', signature: `case ${index}`, count: 1 };
      await this.shrink(
        failure,
        index,
        async (c) => {
          const r = await this.runAlone(c);
          if (lines.length === 0) {
            lines.push(`case ${index} of seed ${this.options.seed}: ${describeCase(c)}`);
            if (r.request) lines.push(`request: ${r.request}`);
            lines.push(`answer: ${r.answer}`);
          }
          return r.crashed || (r.status ?? 0) >= 500
            ? { ...(r.request ? { request: r.request } : {}), response: r.answer }
            : undefined;
        },
        Date.now() + (this.options.shrinkMs ?? 60_000),
      );
      if (failure.shrunk) {
        lines.push(
          `minimal failing case (after ${failure.shrunk.shrinks} shrinks): ${describeCase(failure.shrunk.case)}`,
          `its request: ${failure.shrunk.request}`,
          `its answer: ${failure.shrunk.response}`,
        );
      } else {
        lines.push('no crash and no 5xx');
      }
      return lines.join('\n');
    } finally {
      await this.tearDown();
    }
  }

  /**
   * Replays case `index` of the seed with fast-check, which shrinks it while `fails` still
   * answers something; the smallest failing case is kept on the failure.
   */
  private async shrink(
    failure: Failure,
    index: number,
    fails: (c: FuzzCase) => Promise<{ request?: string; response: string } | undefined>,
    deadline: number,
  ): Promise<void> {
    let last: { case: FuzzCase; request?: string; response: string } | undefined;
    const details = await fc.check(
      fc.asyncProperty(fuzzCase, async (c) => {
        const failed = await fails(c);
        if (failed) last = { case: c, ...failed };
        return failed === undefined;
      }),
      {
        seed: this.options.seed,
        path: String(index),
        numRuns: 1,
        interruptAfterTimeLimit: Math.max(1000, deadline - Date.now()),
      },
    );
    if (!details.failed || !last) {
      failure.notReproduced = true;
      return;
    }
    const shrunk = details.counterexample?.[0] as FuzzCase | undefined;
    failure.shrunk = {
      case: shrunk ?? last.case,
      ...(last.request ? { request: last.request } : {}),
      response: last.response,
      shrinks: details.numShrinks,
    };
  }

  private result(cases: number, seconds: number): FuzzResult {
    const failures = [...this.failures.values()];
    return {
      seed: this.options.seed,
      cases,
      mqtt: this.stats.mqtt,
      subscribe: this.stats.subscribe,
      rest: this.stats.rest,
      seconds,
      casesPerSecond: cases / Math.max(seconds, 0.001),
      crashes: this.counts.crash,
      serverErrors: this.counts['5xx'],
      corruptions: this.counts.corruption,
      leaks: this.counts.leak,
      timeouts: this.counts.timeout,
      failures,
      mqttCloses: this.pool?.closes ?? 0,
      statuses: this.statuses,
      storedStates: this.baseline?.states ?? 0,
      checkpoints: this.stats.checkpoints,
      ...(this.aborted ? { aborted: this.aborted } : {}),
    };
  }
}

export function runFuzz(options: FuzzOptions): Promise<FuzzResult> {
  return new FuzzRun(options).run();
}

function describeRequest(req: HttpRequest): string {
  const headers = Object.entries(req.headers)
    .map(([k, v]) => `${k}: ${clip(String(v), 60)}`)
    .join('; ');
  const body = req.body ? ` body(${req.body.length} bytes): ${clip(req.body.toString('utf8'), 300)}` : '';
  return `${req.method} ${clip(req.path, 300)} [${headers}]${body}`;
}

/** How the server ended: the first line of an uncaught error Node printed, or a fatal log entry. */
function crashSignature(exit: Exit): string {
  const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
  const lines = exit.output.split('\n').map((l) => l.replace(/^stderr: /, ''));
  const uncaught = lines.find((l) => !l.startsWith('{') && /(Error|error|FATAL|Abort)/.test(l));
  if (uncaught) return `${how}: ${clip(uncaught.trim(), 160)}`;
  for (const line of lines.reverse()) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { type?: string; message?: string } };
      if ((entry.level ?? 0) >= 60) return `${how}: ${entry.msg} ${entry.err?.type}: ${entry.err?.message}`;
    } catch {
      // not a log line
    }
  }
  return how;
}

function abbreviateTopic(topic: string, fleet: Fleet): string {
  return topic.replace(/[0-9a-f]{24}/g, (id) => fleet.roleOf.get(id) ?? 'ID').slice(0, 80);
}

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

function clip(s: string | undefined, n = 400): string {
  if (s === undefined) return 'undefined';
  return s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s;
}
