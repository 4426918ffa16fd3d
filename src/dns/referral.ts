/**
 * Is a name delegated away from the zone its servers serve? An authoritative
 * server asked about a name below a zone cut answers with a referral: no
 * answer, not authoritative, and the NS records of the child zone in the
 * authority section. The system resolver API hides that section, so this
 * module sends one DNS query itself (UDP, recursion not desired) and reads
 * the referral. Used by the manual provider, which has no API to ask.
 */
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { errorMessage } from '../errors.js';
import { canonicalName } from '../names.js';
import { DnsLookupError } from './query.js';

const TYPE_NS = 2;
const TYPE_TXT = 16;

/** `host` and `port` of `127.0.0.1:5300`, `[::1]:53` or `192.0.2.53`. */
function splitServer(server: string): { host: string; port: number } {
  const v6 = /^\[(.+)\](?::(\d+))?$/.exec(server);
  if (v6) return { host: v6[1]!, port: Number(v6[2] ?? 53) };
  if (isIP(server) === 6) return { host: server, port: 53 };
  const [host, port] = server.split(':');
  return { host: host!, port: Number(port ?? 53) };
}

function encodeName(name: string): Buffer {
  const labels = canonicalName(name).split('.').filter(Boolean);
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([Buffer.byteLength(l)]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
}

/** Reads a (possibly compressed) name at `offset`; returns it and the offset after it. */
function readName(msg: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  for (let jumps = 0; jumps < 64; jumps++) {
    const len = msg[pos];
    if (len === undefined) throw new DnsLookupError('truncated name', 'EBADRESP');
    if (len === 0) {
      if (next < 0) next = pos + 1;
      return { name: labels.join('.').toLowerCase(), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | msg[pos + 1]!;
      continue;
    }
    labels.push(msg.subarray(pos + 1, pos + 1 + len).toString('ascii'));
    pos += 1 + len;
  }
  throw new DnsLookupError('name compression loop', 'EBADRESP');
}

/**
 * The NS targets `server` refers a query for `fqdn` to when `fqdn` itself is
 * delegated (a zone cut at exactly that name), else null.
 * @throws DnsLookupError when the server does not answer in time or answers garbage.
 */
export async function delegationAt(fqdn: string, server: string, options: { timeoutMs?: number } = {}): Promise<string[] | null> {
  const { host, port } = splitServer(server);
  const id = randomInt(0, 0x10000);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0000, 2); // a standard query, recursion not desired
  header.writeUInt16BE(1, 4);
  const question = Buffer.concat([encodeName(fqdn), Buffer.from([0, TYPE_TXT, 0, 1])]);
  const query = Buffer.concat([header, question]);
  const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new DnsLookupError(`no answer from ${server} for ${fqdn} within ${options.timeoutMs ?? 3000} ms`, 'ETIMEOUT'));
    }, options.timeoutMs ?? 3000);
    socket.on('message', (msg) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      socket.close();
      reject(new DnsLookupError(`asking ${server} about ${fqdn} failed: ${error.message}`, 'ECONNREFUSED', { cause: error }));
    });
    socket.send(query, port, host);
  });
  try {
    const flags = reply.readUInt16BE(2);
    const authoritative = (flags & 0x0400) !== 0;
    const [qd, an, ns] = [reply.readUInt16BE(4), reply.readUInt16BE(6), reply.readUInt16BE(8)];
    let pos = 12;
    for (let i = 0; i < qd; i++) pos = readName(reply, pos).next + 4;
    const records: Array<{ name: string; type: number; section: 'answer' | 'authority'; rdataAt: number }> = [];
    for (let i = 0; i < an + ns; i++) {
      const { name, next } = readName(reply, pos);
      const type = reply.readUInt16BE(next);
      const rdlength = reply.readUInt16BE(next + 8);
      records.push({ name, type, section: i < an ? 'answer' : 'authority', rdataAt: next + 10 });
      pos = next + 10 + rdlength;
    }
    const target = canonicalName(fqdn);
    if (authoritative || an > 0) return null;
    const cut = records.filter((r) => r.section === 'authority' && r.type === TYPE_NS && r.name === target);
    return cut.length > 0 ? cut.map((r) => readName(reply, r.rdataAt).name) : null;
  } catch (error) {
    throw new DnsLookupError(`${server} answered about ${fqdn} with a message that cannot be read: ${errorMessage(error)}`, 'EBADRESP', { cause: error });
  }
}
