/**
 * Outbound HTTP for workflows (the HTTP node). A flow is written by a tenant, and a tenant must
 * not reach what only the server can reach: its own loopback services (Redis, PostgreSQL, the
 * admin API), the cloud's metadata address, the private network behind it. Unless the operator
 * allows private addresses (`--workflow-http-private allow`), every connection, redirects
 * included, is checked against the address it actually goes to: the name is resolved once and the
 * socket connects to the checked address, so a name that resolves to a public address when
 * checked and to a private one when used (DNS rebinding) gains nothing.
 */
import { type LookupAddress, type LookupAllOptions, lookup } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';

/** Address ranges a workflow may not reach unless allowed, each named for the error message. */
const RANGES: Array<[network: string, prefix: number, family: 'ipv4' | 'ipv6', kind: string]> = [
  ['0.0.0.0', 8, 'ipv4', 'an unspecified'],
  ['127.0.0.0', 8, 'ipv4', 'a loopback'],
  ['10.0.0.0', 8, 'ipv4', 'a private'],
  ['172.16.0.0', 12, 'ipv4', 'a private'],
  ['192.168.0.0', 16, 'ipv4', 'a private'],
  ['100.64.0.0', 10, 'ipv4', 'a shared (carrier-grade NAT)'],
  ['169.254.0.0', 16, 'ipv4', 'a link-local (cloud metadata)'],
  ['192.0.0.0', 24, 'ipv4', 'a reserved'],
  ['198.18.0.0', 15, 'ipv4', 'a benchmarking'],
  ['224.0.0.0', 4, 'ipv4', 'a multicast'],
  ['240.0.0.0', 4, 'ipv4', 'a reserved'],
  ['::', 128, 'ipv6', 'an unspecified'],
  ['::1', 128, 'ipv6', 'a loopback'],
  ['fc00::', 7, 'ipv6', 'a private (unique local)'],
  ['fe80::', 10, 'ipv6', 'a link-local'],
  ['ff00::', 8, 'ipv6', 'a multicast'],
];

const LISTS = RANGES.map(([network, prefix, family, kind]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, family);
  return { list, family, kind };
});

/** What kind of address a workflow may not reach this is ("a loopback"), or undefined when it may. */
export function forbiddenKind(address: string): string | undefined {
  let ip = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is the IPv4 address.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1] as string;
  const version = isIP(ip);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  return LISTS.find((l) => l.family === family && l.list.check(ip, family))?.kind;
}

/** A connection refused because of where it would go. */
export class AddressNotAllowed extends Error {
  readonly code = 'AddressNotAllowed';

  constructor(host: string, address: string, kind: string) {
    super(
      `${host === address ? address : `${host} (${address})`} is ${kind} address; workflows may not call ` +
        'private addresses unless the operator allows it (--workflow-http-private allow)',
    );
  }
}

function guardedLookup(
  hostname: string,
  options: LookupAllOptions | Record<string, unknown>,
  callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
): void {
  lookup(hostname, { ...(options as object), all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    for (const a of addresses) {
      const kind = forbiddenKind(a.address);
      if (kind) return callback(new AddressNotAllowed(hostname, a.address, kind), []);
    }
    if ((options as { all?: boolean }).all) return callback(null, addresses);
    const first = addresses[0] as LookupAddress;
    callback(null, first.address, first.family);
  });
}

/** The fetch workflows use: every connection checked unless `allowPrivate`. */
export type OutboundFetch = (url: URL, init: RequestInit) => Promise<Response>;

export function outboundFetch(options: { allowPrivate: boolean }): OutboundFetch {
  if (options.allowPrivate) return (url, init) => fetch(url, init);
  const connect = buildConnector({ lookup: guardedLookup as never });
  const dispatcher = new Agent({
    connect(opts, callback) {
      // A literal address is never looked up: it is checked here.
      const kind = forbiddenKind(opts.hostname);
      if (kind) {
        callback(new AddressNotAllowed(opts.hostname, opts.hostname, kind), null);
        return;
      }
      connect(opts, callback);
    },
  });
  return (url, init) =>
    undiciFetch(url, { ...(init as Record<string, unknown>), dispatcher }) as unknown as Promise<Response>;
}
