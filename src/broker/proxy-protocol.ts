/**
 * The PROXY protocol header (versions 1 and 2) that a load balancer puts before a client's bytes,
 * so that a node behind it knows the client's address (docs/scale-out.md, "Load balancer").
 * Only connections from a trusted proxy are read this way; the header's framing is checked here,
 * its fields are decoded by proxy-protocol-js.
 */
import net from 'node:net';
import {
  Command,
  INETProtocol,
  IPv4ProxyAddress,
  IPv6ProxyAddress,
  V1BinaryProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';

/** A version 1 header is one line of at most 107 bytes, CRLF included. */
const V1_MAX = 107;
const V1_SIGNATURE = Buffer.from('PROXY ');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, version and command, family and transport, length. */
const V2_FIXED = 16;
/** Addresses and TLVs of a version 2 header; a balancer sends a few dozen bytes. */
const V2_MAX_BODY = 512;

export class ProxyHeaderError extends Error {
  override name = 'ProxyHeaderError';
}

/**
 * The client's address in `buffer`'s header, and how many bytes the header takes; `undefined`
 * while the header is incomplete. Throws ProxyHeaderError when the bytes cannot be a header.
 * A LOCAL command (a health check of the balancer's own) and `UNKNOWN` give `null`: the
 * connection's own address stands.
 */
export function parseProxyHeader(buffer: Buffer): { address: string | null; length: number } | undefined {
  if (startsWithPrefixOf(buffer, V2_SIGNATURE)) {
    if (buffer.length < V2_FIXED) return undefined;
    const body = buffer.readUInt16BE(14);
    if (body > V2_MAX_BODY) throw new ProxyHeaderError(`PROXY v2 header of ${body} bytes (at most ${V2_MAX_BODY})`);
    if (buffer.length < V2_FIXED + body) return undefined;
    const header = buffer.subarray(0, V2_FIXED + body);
    let parsed: V2ProxyProtocol;
    try {
      parsed = V2ProxyProtocol.parse(header);
    } catch (err) {
      throw new ProxyHeaderError(`malformed PROXY v2 header: ${(err as { message?: string }).message ?? 'unknown'}`);
    }
    return { address: parsed.command === Command.PROXY ? v2Address(parsed) : null, length: header.length };
  }
  if (startsWithPrefixOf(buffer, V1_SIGNATURE)) {
    const end = buffer.indexOf('\r\n');
    if (end < 0) {
      if (buffer.length >= V1_MAX) throw new ProxyHeaderError(`PROXY v1 header longer than ${V1_MAX} bytes`);
      return undefined;
    }
    if (end + 2 > V1_MAX) throw new ProxyHeaderError(`PROXY v1 header longer than ${V1_MAX} bytes`);
    const line = buffer.subarray(0, end + 2);
    // UNKNOWN may carry anything after it, which the decoder would refuse.
    if (/^PROXY UNKNOWN[ \r]/.test(line.toString('latin1'))) return { address: null, length: line.length };
    let parsed: V1BinaryProxyProtocol;
    try {
      parsed = V1BinaryProxyProtocol.parse(line);
    } catch (err) {
      throw new ProxyHeaderError(`malformed PROXY v1 header: ${(err as { message?: string }).message ?? 'unknown'}`);
    }
    // The decoder takes any word for an address.
    const family = net.isIP(parsed.source.ipAddress);
    if (family !== (parsed.inetProtocol === INETProtocol.TCP6 ? 6 : 4)) {
      throw new ProxyHeaderError('malformed PROXY v1 header: the source is not an address of its family');
    }
    return { address: parsed.source.ipAddress, length: line.length };
  }
  throw new ProxyHeaderError('a trusted proxy connected without a PROXY protocol header');
}

/**
 * Reads the header off a socket from a trusted proxy. Resolves the client's address (or the
 * socket's own, see parseProxyHeader) once the header is in, with the bytes after it put back
 * for the MQTT parser. Rejects, with the socket destroyed, on a bad header, on `timeoutMs`
 * without one, or when the socket ends first.
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const fail = (err: Error) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      let header: ReturnType<typeof parseProxyHeader>;
      try {
        header = parseProxyHeader(received);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (!header) return;
      cleanup();
      // Paused so that nothing flows before the broker's parser is attached.
      socket.pause();
      const rest = received.subarray(header.length);
      if (rest.length > 0) socket.unshift(rest);
      resolve(header.address ?? socket.remoteAddress ?? null);
    };
    const onEnd = () => fail(new ProxyHeaderError('the connection ended before its PROXY protocol header'));
    const onError = (err: Error) => fail(err);
    const timer = setTimeout(
      () => fail(new ProxyHeaderError(`no PROXY protocol header within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
  });
}

/** Whether `buffer` and `signature` agree on their common length. */
function startsWithPrefixOf(buffer: Buffer, signature: Buffer): boolean {
  const n = Math.min(buffer.length, signature.length);
  return n > 0 && buffer.subarray(0, n).equals(signature.subarray(0, n));
}

function v2Address(parsed: V2ProxyProtocol): string | null {
  const a = parsed.proxyAddress;
  if (a instanceof IPv4ProxyAddress) return a.sourceAddress.address.join('.');
  if (a instanceof IPv6ProxyAddress) {
    const bytes = a.sourceAddress.address;
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
    return compressIPv6(groups);
  }
  return null;
}

/** The usual short form: the longest run of zero groups becomes `::`, IPv4-mapped as a.b.c.d. */
function compressIPv6(groups: string[]): string {
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const hi = Number.parseInt(groups[6] ?? '0', 16);
    const lo = Number.parseInt(groups[7] ?? '0', 16);
    return `::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  let best = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j += 1;
    if (j - i > bestLength && j - i > 1) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}
