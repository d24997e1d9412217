/**
 * Load generators over real MQTT.js clients: QoS 0 as fast as the socket drains, QoS 1 with a
 * window of publishes in flight per client, and QoS 1 at a fixed rate.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Latencies } from './stats.js';

export async function connect(url: string, options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 15_000, ...options });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error(`connection of ${options.clientId ?? 'client'} closed`)));
    });
  } catch (err) {
    client.end(true);
    throw err;
  }
  // Nobody enables TCP_NODELAY by default; without it small publishes wait for delayed ACKs.
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  client.removeAllListeners('error');
  client.on('error', () => {}); // errors after connect surface as missing acks, reported by the scenario
  return client;
}

/** One connected client publishing round-robin over its topics. */
export class Publisher {
  private next = 0;
  private seq = 0;
  /** Last state time per topic, so each state of a device has its own millisecond (no merges). */
  private readonly lastTime: number[];

  constructor(
    readonly client: MqttClient,
    readonly topics: string[],
    private readonly explicitTime: boolean,
  ) {
    this.lastTime = topics.map(() => 0);
  }

  /** The next topic and payload: `{"data":{"temperature":..,"seq":N},"time":T}`. */
  nextMessage(): [string, string] {
    const i = this.next;
    this.next = (i + 1) % this.topics.length;
    const seq = this.seq++;
    const temperature = (200 + (seq % 100)) / 10;
    let body = `{"data":{"temperature":${temperature},"seq":${seq}}`;
    if (this.explicitTime) {
      const time = Math.max(Date.now(), (this.lastTime[i] ?? 0) + 1);
      this.lastTime[i] = time;
      body += `,"time":${time}`;
    }
    return [this.topics[i] as string, `${body}}`];
  }
}

export interface LoadResult {
  /** Publishes written (QoS 0) or acknowledged (QoS 1). */
  done: number;
  /** From the first publish to the last write (QoS 0) or acknowledgement (QoS 1). */
  elapsedMs: number;
  latencies: Latencies;
  aborted: boolean;
  failed: number;
}

/** Splits `total` as evenly as possible over `n` publishers. */
function share(total: number, n: number, i: number): number {
  return Math.floor(total / n) + (i < total % n ? 1 : 0);
}

/**
 * QoS 0: each publisher writes until its socket buffer is full, waits for `drain`, and goes on,
 * yielding to the event loop every few hundred messages. Resolves when all are written.
 */
export async function qos0Saturation(publishers: Publisher[], total: number, deadline: number): Promise<LoadResult> {
  const start = performance.now();
  let aborted = false;
  let written = 0;
  await Promise.all(
    publishers.map(
      (p, i) =>
        new Promise<void>((resolve) => {
          const quota = share(total, publishers.length, i);
          let sent = 0;
          const pump = () => {
            let burst = 0;
            while (sent < quota) {
              if (Date.now() > deadline) {
                aborted = true;
                resolve();
                return;
              }
              const [topic, payload] = p.nextMessage();
              let synchronous = true;
              let wroteNow = false;
              sent++;
              p.client.publish(topic, payload, { qos: 0 }, () => {
                written++;
                if (synchronous) wroteNow = true;
                else if (sent < quota) pump();
                else resolve();
              });
              synchronous = false;
              if (!wroteNow) return; // the callback runs on drain and resumes the pump
              if (++burst >= 500) {
                setImmediate(pump);
                return;
              }
            }
            resolve();
          };
          pump();
        }),
    ),
  );
  return { done: written, elapsedMs: performance.now() - start, latencies: new Latencies(), aborted, failed: 0 };
}

/** QoS 1: each publisher keeps `window` publishes awaiting PUBACK until `total` are acknowledged. */
export async function qos1Window(
  publishers: Publisher[],
  total: number,
  window: number,
  deadline: number,
): Promise<LoadResult> {
  const latencies = new Latencies();
  const start = performance.now();
  let last = start;
  let acked = 0;
  let failed = 0;
  let aborted = false;
  await Promise.all(
    publishers.map(async (p, i) => {
      const quota = share(total, publishers.length, i);
      let issued = 0;
      const lane = async () => {
        while (issued < quota) {
          if (Date.now() > deadline) {
            aborted = true;
            return;
          }
          issued++;
          const [topic, payload] = p.nextMessage();
          const t0 = performance.now();
          try {
            await withTimeout(p.client.publishAsync(topic, payload, { qos: 1 }), deadline);
            last = performance.now();
            latencies.add(last - t0);
            acked++;
          } catch {
            failed++;
            if (Date.now() > deadline) aborted = true;
            return;
          }
        }
      };
      await Promise.all(Array.from({ length: window }, lane));
    }),
  );
  return { done: acked, elapsedMs: last - start, latencies, aborted, failed };
}

/**
 * QoS 1 at `rate` publishes/s in total for `durationMs`: every 10 ms each publisher sends the
 * publishes that have come due since it started (so a late timer catches up), then all
 * outstanding acknowledgements are awaited.
 */
export async function qos1FixedRate(
  publishers: Publisher[],
  rate: number,
  durationMs: number,
  deadline: number,
): Promise<LoadResult & { maxLagMs: number }> {
  const latencies = new Latencies();
  const start = performance.now();
  let last = start;
  let acked = 0;
  let failed = 0;
  let maxLagMs = 0;
  const pending: Array<Promise<void>> = [];
  const perClient = rate / publishers.length;
  const target = Math.round(rate * (durationMs / 1000));
  const sent = publishers.map(() => 0);
  await new Promise<void>((resolve) => {
    let tick = 0;
    const step = () => {
      const now = performance.now();
      const elapsed = now - start;
      maxLagMs = Math.max(maxLagMs, elapsed - tick * 10);
      const end = elapsed >= durationMs || Date.now() > deadline;
      for (const [i, p] of publishers.entries()) {
        const quota = share(target, publishers.length, i);
        const due = end ? quota : Math.min(quota, Math.floor((elapsed / 1000) * perClient));
        while ((sent[i] as number) < due) {
          sent[i] = (sent[i] as number) + 1;
          const [topic, payload] = p.nextMessage();
          const t0 = performance.now();
          pending.push(
            withTimeout(p.client.publishAsync(topic, payload, { qos: 1 }), deadline).then(
              () => {
                last = performance.now();
                latencies.add(last - t0);
                acked++;
              },
              () => {
                failed++;
              },
            ),
          );
        }
      }
      if (end) {
        resolve();
        return;
      }
      tick++;
      setTimeout(step, Math.max(0, start + tick * 10 - performance.now()));
    };
    step();
  });
  await Promise.all(pending);
  return {
    done: acked,
    elapsedMs: last - start,
    latencies,
    aborted: Date.now() > deadline,
    failed,
    maxLagMs,
  };
}

function withTimeout<T>(promise: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('deadline passed')), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Closes clients in batches, without waiting for DISCONNECT acknowledgements. */
export async function closeAll(clients: MqttClient[], batch = 500): Promise<void> {
  for (let i = 0; i < clients.length; i += batch) {
    await Promise.all(clients.slice(i, i + batch).map((c) => c.endAsync(true).catch(() => {})));
  }
}
