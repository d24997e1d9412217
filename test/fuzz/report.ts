/** The summary of a fuzz run, as `npm run fuzz` prints it and the Vitest test shows it on failure. */
import { describeCase } from './cases.js';
import type { Failure, FuzzResult } from './runner.js';

const fmt = (n: number) => n.toLocaleString('en-US');

export function formatResult(r: FuzzResult): string {
  const lines = [
    `seed ${r.seed}: ${fmt(r.cases)} cases (${fmt(r.mqtt)} MQTT publishes, ${fmt(r.subscribe)} MQTT subscribes, ${fmt(r.rest)} REST) ` +
      `in ${r.seconds.toFixed(1)} s, ${fmt(Math.round(r.casesPerSecond))} cases/s`,
    `crashes: ${fmt(r.crashes)}   5xx: ${fmt(r.serverErrors)}   corrupted states: ${fmt(r.corruptions)}   ` +
      `leaks: ${fmt(r.leaks)}   timeouts: ${fmt(r.timeouts)}`,
    `oracle checkpoints: ${r.checkpoints}, states stored in the watched devices: ${fmt(r.storedStates)}, ` +
      `MQTT connections closed by the server: ${fmt(r.mqttCloses)}`,
    `answers: ${Object.entries(r.statuses)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')}`,
  ];
  if (r.aborted) lines.push(`RUN ABORTED: ${r.aborted}`);
  if (r.failures.length > 0) {
    lines.push('', `${r.failures.length} distinct failures (replay one case with --seed ${r.seed} --replay INDEX):`);
    for (const [i, f] of r.failures.entries()) lines.push('', ...formatFailure(f, i + 1));
  }
  return lines.join('\n');
}

function formatFailure(f: Failure, n: number): string[] {
  const out = [`${n}. [${f.kind}] ${f.signature} (${fmt(f.count)}x)`];
  const indent = (label: string, text: string | undefined) => {
    if (text) out.push(`   ${label}: ${text.replace(/\n/g, '\n      ')}`);
  };
  if (f.caseIndex !== undefined && f.case) indent(`case ${f.caseIndex}`, describeCase(f.case));
  else if (f.caseIndex !== undefined) indent('case', String(f.caseIndex));
  indent('request', f.request);
  indent('answer', f.response);
  indent('detail', f.detail);
  if (f.shrunk) {
    indent(`minimal case (after ${f.shrunk.shrinks} shrinks)`, describeCase(f.shrunk.case));
    indent('minimal request', f.shrunk.request);
    indent('its answer', f.shrunk.response);
  }
  if (f.notReproduced) out.push('   (did not happen again when replayed alone)');
  if (f.suspects && !f.shrunk) {
    out.push('   cases in flight when it happened, then the last ones sent:');
    for (const s of f.suspects) out.push(`     ${s}`);
  }
  return out;
}
