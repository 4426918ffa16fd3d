/**
 * A small Route 53 on loopback that speaks the service's REST/XML wire
 * format (API version 2013-04-01), so the real @aws-sdk/client-route-53 can
 * be pointed at it with `endpoint`. It holds hosted zones and record sets,
 * validates change batches as Route 53 does for what we send (TXT strings of
 * at most 255 characters, DELETE must match exactly, no TXT beside a CNAME),
 * pages its lists with MaxItems and Next* markers, keeps changes PENDING for
 * a few GetChange polls, and can be told to answer `Throttling`,
 * `PriorRequestNotComplete`, `ServiceUnavailable` or `InvalidInput`, to any
 * request or to the ones a predicate picks (the second page of a list). Every request is recorded for assertions.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { SaxesParser } from 'saxes';

const NS = 'https://route53.amazonaws.com/doc/2013-04-01/';

/** One record set as the fake stores it. */
export interface FakeRecordSet {
  /** Absolute, lowercase: `_dmarc.example.com.` */
  name: string;
  type: string;
  ttl: number;
  /** Values as Route 53 holds them (TXT in presentation format). */
  values: string[];
}

/** One hosted zone. */
export interface FakeHostedZone {
  /** Bare id, e.g. `Z0001`. */
  id: string;
  /** Absolute: `example.com.` */
  name: string;
  private: boolean;
  recordSets: FakeRecordSet[];
}

/** A request as the server saw it. */
export interface RecordedRequest {
  operation: string;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage['headers'];
  body: string;
  /** The error code the server answered with, if any. */
  error: string | null;
}

/** A fault to answer instead of serving a request. */
export interface InjectedFault {
  /** Operation name (`ChangeResourceRecordSets`, ...) or `*` for any. */
  operation: string;
  code: 'Throttling' | 'PriorRequestNotComplete' | 'ServiceUnavailable' | 'InvalidInput';
  /** How many requests get it. */
  times: number;
  /** Only requests this picks (say, the second page of a list); default every request of the operation. */
  when?: (request: RecordedRequest) => boolean;
}

interface XmlNode {
  name: string;
  text: string;
  children: XmlNode[];
}

function parseXml(xml: string): XmlNode {
  const parser = new SaxesParser({ xmlns: false });
  const root: XmlNode = { name: '#root', text: '', children: [] };
  const stack: XmlNode[] = [root];
  parser.on('opentag', (tag) => {
    const node: XmlNode = { name: tag.name, text: '', children: [] };
    stack[stack.length - 1]!.children.push(node);
    stack.push(node);
  });
  parser.on('text', (text) => {
    stack[stack.length - 1]!.text += text;
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  parser.write(xml).close();
  return root;
}

function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return node?.children.find((c) => c.name === name);
}

function children(node: XmlNode | undefined, name: string): XmlNode[] {
  return node?.children.filter((c) => c.name === name) ?? [];
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function absolute(name: string): string {
  return `${name.replace(/\.$/, '').toLowerCase()}.`;
}

/** Route 53 orders names by their labels reversed. */
function nameKey(name: string): string {
  return absolute(name).replace(/\.$/, '').split('.').reverse().join('.');
}

function compareSets(a: { name: string; type: string }, b: { name: string; type: string }): number {
  const ka = nameKey(a.name);
  const kb = nameKey(b.name);
  if (ka !== kb) return ka < kb ? -1 : 1;
  return a.type < b.type ? -1 : a.type > b.type ? 1 : 0;
}

/**
 * The character-strings of a TXT value as Route 53 reads them (their bytes),
 * or null when the value is malformed: strings in double quotes, `\"` and
 * `\\` inside them, and every byte outside printable ASCII written as a
 * three-digit OCTAL escape (`\011` is a tab, `\303\251` is é), as Route 53
 * documents. A raw control or non-ASCII character is refused, as Route 53
 * refuses it. A value with no quotes at all is one string, as given.
 */
function txtStrings(value: string): Buffer[] | null {
  const text = value.trim();
  if (!text.startsWith('"')) {
    if (value.includes('"') || text === '' || /[^\x20-\x7e]/.test(value)) return null;
    return [Buffer.from(value, 'latin1')];
  }
  const out: Buffer[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i += 1;
    if (i >= text.length) break;
    if (text[i] !== '"') return null;
    i += 1;
    const bytes: number[] = [];
    let closed = false;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        closed = true;
        i += 1;
        break;
      }
      if (c < 0x20 || c > 0x7e) return null;
      if (c === 0x5c) {
        const octal = /^[0-7]{3}/.exec(text.slice(i + 1, i + 4));
        if (octal) {
          const byte = parseInt(octal[0], 8);
          if (byte > 255) return null;
          bytes.push(byte);
          i += 4;
          continue;
        }
        const next = text.charCodeAt(i + 1);
        if (Number.isNaN(next) || next < 0x20 || next > 0x7e) return null;
        bytes.push(next);
        i += 2;
        continue;
      }
      bytes.push(c);
      i += 1;
    }
    if (!closed) return null;
    out.push(Buffer.from(bytes));
  }
  return out.length > 0 ? out : null;
}

/** The value as Route 53 answers it: each string quoted, `\"` and `\\` escaped, every other byte outside printable ASCII as `\ooo` octal. */
function canonicalTxt(strings: Buffer[]): string {
  return strings
    .map((bytes) => {
      let out = '"';
      for (const byte of bytes) {
        if (byte === 0x22) out += '\\"';
        else if (byte === 0x5c) out += '\\\\';
        else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
        else out += `\\${byte.toString(8).padStart(3, '0')}`;
      }
      return `${out}"`;
    })
    .join(' ');
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A running fake Route 53. */
export class Route53Server {
  readonly requests: RecordedRequest[] = [];
  readonly zones = new Map<string, FakeHostedZone>();
  /** GetChange answers PENDING this many times per change before INSYNC. */
  pendingPolls = 2;
  /**
   * Refuse a change while the zone's previous change has not yet been
   * reported INSYNC, as Route 53 answers PriorRequestNotComplete.
   */
  strictPending = true;
  /** When set, requests must be signed with this access key id. */
  accessKeyId: string | null = null;
  readonly #faults: InjectedFault[] = [];
  readonly #changes = new Map<string, { polls: number; zoneId: string }>();
  /** Zone id -> change requests to refuse with PriorRequestNotComplete (another writer's change still pending). */
  readonly #busyZones = new Map<string, number>();
  #server: Server | null = null;
  #nextChange = 1;
  #endpoint = '';

  /** `http://127.0.0.1:PORT`, for the SDK's `endpoint`. */
  get endpoint(): string {
    return this.#endpoint;
  }

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(error));
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (address === null || typeof address !== 'object') throw new Error('route53 fake: no address');
    this.#endpoint = `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  /** Adds a hosted zone; returns it. */
  addZone(name: string, options: { id?: string; private?: boolean; recordSets?: FakeRecordSet[] } = {}): FakeHostedZone {
    const id = options.id ?? `Z${String(this.zones.size + 1).padStart(4, '0')}${randomUUID().slice(0, 8).toUpperCase()}`;
    const zone: FakeHostedZone = {
      id,
      name: absolute(name),
      private: options.private ?? false,
      recordSets: [
        { name: absolute(name), type: 'NS', ttl: 172800, values: ['ns-1.awsdns-test.net.', 'ns-2.awsdns-test.org.'] },
        { name: absolute(name), type: 'SOA', ttl: 900, values: ['ns-1.awsdns-test.net. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400'] },
        ...(options.recordSets ?? []).map((s) => ({ ...s, name: absolute(s.name) })),
      ],
    };
    this.zones.set(id, zone);
    return zone;
  }

  /** The record set at `name`/`type` in zone `id`, if any. */
  recordSet(zoneId: string, name: string, type: string): FakeRecordSet | undefined {
    return this.zones.get(zoneId)?.recordSets.find((s) => s.name === absolute(name) && s.type === type);
  }

  /** Forgets zones, requests, changes and pending faults: a clean account. */
  reset(): void {
    this.zones.clear();
    this.requests.length = 0;
    this.#faults.length = 0;
    this.#changes.clear();
    this.#busyZones.clear();
  }

  /** Answers the next `times` requests for `operation` with an error. */
  inject(fault: InjectedFault): void {
    this.#faults.push({ ...fault });
  }

  /** Drops the faults not yet answered. */
  clearFaults(): void {
    this.#faults.length = 0;
  }

  /** Refuses the next `times` changes to a zone with PriorRequestNotComplete, as while another change is pending. */
  busy(zoneId: string, times: number): void {
    this.#busyZones.set(zoneId, times);
  }

  /** Recorded requests for one operation. */
  calls(operation: string): RecordedRequest[] {
    return this.requests.filter((r) => r.operation === operation);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams.entries());
    const path = decodeURIComponent(url.pathname);
    const operation = this.#operation(req.method ?? 'GET', path);
    const record: RecordedRequest = { operation, method: req.method ?? 'GET', path, query, headers: req.headers, body, error: null };
    this.requests.push(record);
    try {
      this.#checkAuth(req);
      const fault = this.#faults.find((f) => f.times > 0 && (f.operation === '*' || f.operation === operation) && (f.when === undefined || f.when(record)));
      if (fault) {
        fault.times -= 1;
        if (fault.code === 'ServiceUnavailable') throw new ApiError(503, 'ServiceUnavailable', 'Service Unavailable');
        if (fault.code === 'Throttling') throw new ApiError(400, 'Throttling', 'Rate exceeded');
        if (fault.code === 'InvalidInput') throw new ApiError(400, 'InvalidInput', 'The input is not valid');
        throw new ApiError(400, 'PriorRequestNotComplete', 'The request was rejected because Route 53 was still processing a prior request.');
      }
      const xml = this.#dispatch(operation, path, query, body);
      res.writeHead(200, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID() });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${xml}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      record.error = error.code;
      const requestId = randomUUID();
      res.writeHead(error.status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId });
      res.end(
        `<?xml version="1.0"?>\n<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${error.code}</Code>` +
          `<Message>${esc(error.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      );
    }
  }

  #checkAuth(req: IncomingMessage): void {
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('AWS4-HMAC-SHA256 Credential=')) {
      throw new ApiError(403, 'MissingAuthenticationToken', 'Missing Authentication Token');
    }
    if (this.accessKeyId !== null && !auth.startsWith(`AWS4-HMAC-SHA256 Credential=${this.accessKeyId}/`)) {
      throw new ApiError(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
    }
  }

  #operation(method: string, path: string): string {
    if (method === 'GET' && path === '/2013-04-01/hostedzonesbyname') return 'ListHostedZonesByName';
    if (method === 'GET' && /^\/2013-04-01\/hostedzone\/[^/]+$/.test(path)) return 'GetHostedZone';
    if (method === 'GET' && /^\/2013-04-01\/hostedzone\/[^/]+\/rrset\/?$/.test(path)) return 'ListResourceRecordSets';
    if (method === 'POST' && /^\/2013-04-01\/hostedzone\/[^/]+\/rrset\/?$/.test(path)) return 'ChangeResourceRecordSets';
    if (method === 'GET' && /^\/2013-04-01\/change\/[^/]+$/.test(path)) return 'GetChange';
    return `Unknown ${method} ${path}`;
  }

  #zone(path: string): FakeHostedZone {
    const id = /^\/2013-04-01\/hostedzone\/([^/]+)/.exec(path)?.[1] ?? '';
    const zone = this.zones.get(id);
    if (!zone) throw new ApiError(404, 'NoSuchHostedZone', `No hosted zone found with ID: ${id}`);
    return zone;
  }

  #dispatch(operation: string, path: string, query: Record<string, string>, body: string): string {
    switch (operation) {
      case 'ListHostedZonesByName':
        return this.#listZones(query);
      case 'GetHostedZone': {
        const zone = this.#zone(path);
        return `<GetHostedZoneResponse xmlns="${NS}">${this.#zoneXml(zone)}<DelegationSet><NameServers><NameServer>ns-1.awsdns-test.net</NameServer></NameServers></DelegationSet></GetHostedZoneResponse>`;
      }
      case 'ListResourceRecordSets':
        return this.#listSets(this.#zone(path), query);
      case 'ChangeResourceRecordSets':
        return this.#change(this.#zone(path), body);
      case 'GetChange': {
        const id = /^\/2013-04-01\/change\/(.+)$/.exec(path)?.[1] ?? '';
        const change = this.#changes.get(id);
        if (!change) throw new ApiError(404, 'NoSuchChange', `A change with the specified change ID does not exist: ${id}`);
        change.polls += 1;
        const status = change.polls > this.pendingPolls ? 'INSYNC' : 'PENDING';
        return `<GetChangeResponse xmlns="${NS}"><ChangeInfo><Id>/change/${id}</Id><Status>${status}</Status><SubmittedAt>2026-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo></GetChangeResponse>`;
      }
      default:
        throw new ApiError(404, 'UnknownOperationException', operation);
    }
  }

  #zoneXml(zone: FakeHostedZone): string {
    return (
      `<HostedZone><Id>/hostedzone/${zone.id}</Id><Name>${esc(zone.name)}</Name><CallerReference>${zone.id}-ref</CallerReference>` +
      `<Config><PrivateZone>${zone.private}</PrivateZone></Config><ResourceRecordSetCount>${zone.recordSets.length}</ResourceRecordSetCount></HostedZone>`
    );
  }

  #maxItems(query: Record<string, string>, fallback: number): number {
    const raw = query['maxitems'];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new ApiError(400, 'InvalidInput', `1 validation error detected: Value '${raw}' at 'maxItems' failed to satisfy constraint`);
    return Math.min(n, fallback);
  }

  #listZones(query: Record<string, string>): string {
    const max = this.#maxItems(query, 100);
    const sorted = [...this.zones.values()].sort((a, b) => compareSets({ name: a.name, type: a.id }, { name: b.name, type: b.id }));
    const startName = query['dnsname'];
    const startId = query['hostedzoneid'];
    if (startId !== undefined && startName === undefined) throw new ApiError(400, 'InvalidInput', 'hostedzoneid requires dnsname');
    const from =
      startName === undefined
        ? sorted
        : sorted.filter((z) => compareSets({ name: z.name, type: z.id }, { name: startName, type: startId ?? '' }) >= 0);
    const page = from.slice(0, max);
    const next = from[max];
    return (
      `<ListHostedZonesByNameResponse xmlns="${NS}"><HostedZones>${page.map((z) => this.#zoneXml(z)).join('')}</HostedZones>` +
      (startName !== undefined ? `<DNSName>${esc(startName)}</DNSName>` : '') +
      (startId !== undefined ? `<HostedZoneId>${esc(startId)}</HostedZoneId>` : '') +
      `<IsTruncated>${next !== undefined}</IsTruncated>` +
      (next !== undefined ? `<NextDNSName>${esc(next.name)}</NextDNSName><NextHostedZoneId>${next.id}</NextHostedZoneId>` : '') +
      `<MaxItems>${max}</MaxItems></ListHostedZonesByNameResponse>`
    );
  }

  #setXml(set: FakeRecordSet): string {
    return (
      `<ResourceRecordSet><Name>${esc(set.name)}</Name><Type>${set.type}</Type><TTL>${set.ttl}</TTL><ResourceRecords>` +
      set.values.map((v) => `<ResourceRecord><Value>${esc(v)}</Value></ResourceRecord>`).join('') +
      `</ResourceRecords></ResourceRecordSet>`
    );
  }

  #listSets(zone: FakeHostedZone, query: Record<string, string>): string {
    const max = this.#maxItems(query, 300);
    const startName = query['name'];
    const startType = query['type'];
    if (startType !== undefined && startName === undefined) throw new ApiError(400, 'InvalidInput', 'The input is not valid: type requires name');
    const sorted = [...zone.recordSets].sort(compareSets);
    const from =
      startName === undefined ? sorted : sorted.filter((s) => compareSets(s, { name: startName, type: startType ?? '' }) >= 0);
    const page = from.slice(0, max);
    const next = from[max];
    return (
      `<ListResourceRecordSetsResponse xmlns="${NS}"><ResourceRecordSets>${page.map((s) => this.#setXml(s)).join('')}</ResourceRecordSets>` +
      `<IsTruncated>${next !== undefined}</IsTruncated>` +
      (next !== undefined ? `<NextRecordName>${esc(next.name)}</NextRecordName><NextRecordType>${next.type}</NextRecordType>` : '') +
      `<MaxItems>${max}</MaxItems></ListResourceRecordSetsResponse>`
    );
  }

  #change(zone: FakeHostedZone, body: string): string {
    const busy = this.#busyZones.get(zone.id) ?? 0;
    if (busy > 0) {
      this.#busyZones.set(zone.id, busy - 1);
      throw new ApiError(400, 'PriorRequestNotComplete', 'The request was rejected because Route 53 was still processing a prior request.');
    }
    const pending = [...this.#changes.values()].some((c) => c.zoneId === zone.id && c.polls <= this.pendingPolls);
    if (this.strictPending && pending) {
      throw new ApiError(400, 'PriorRequestNotComplete', 'The request was rejected because Route 53 was still processing a prior request.');
    }
    const request = child(parseXml(body), 'ChangeResourceRecordSetsRequest');
    const changes = children(child(child(request, 'ChangeBatch'), 'Changes'), 'Change');
    if (changes.length === 0) throw new ApiError(400, 'InvalidInput', 'No changes in the change batch');
    const next = zone.recordSets.map((s) => ({ ...s, values: [...s.values] }));
    for (const change of changes) {
      const action = child(change, 'Action')?.text ?? '';
      const setNode = child(change, 'ResourceRecordSet');
      const set: FakeRecordSet = {
        name: absolute(child(setNode, 'Name')?.text ?? ''),
        type: child(setNode, 'Type')?.text ?? '',
        ttl: Number(child(setNode, 'TTL')?.text ?? 'NaN'),
        values: children(child(setNode, 'ResourceRecords'), 'ResourceRecord').map((r) => child(r, 'Value')?.text ?? ''),
      };
      if (!set.name.endsWith(`.${zone.name}`) && set.name !== zone.name) {
        throw new ApiError(400, 'InvalidChangeBatch', `RRSet with DNS name ${set.name} is not permitted in zone ${zone.name}`);
      }
      if (set.type === 'TXT') {
        set.values = set.values.map((value) => {
          const strings = txtStrings(value);
          if (strings === null) throw new ApiError(400, 'InvalidChangeBatch', `[Invalid Resource Record: 'FATAL problem: InvalidCharacterString (Value should be enclosed in quotation marks) encountered with '${value}'']`);
          if (strings.some((s) => s.length > 255)) {
            throw new ApiError(400, 'InvalidChangeBatch', `[Invalid Resource Record: 'FATAL problem: TXTRDATATooLong (Value is too long) encountered with '${value.slice(0, 40)}'']`);
          }
          // Route 53 keeps and answers the value in its own escaped form, whatever escapes the request used.
          return canonicalTxt(strings);
        });
      }
      const index = next.findIndex((s) => s.name === set.name && s.type === set.type);
      if (action === 'DELETE') {
        const current = next[index];
        if (!current || current.ttl !== set.ttl || [...current.values].sort().join('\n') !== [...set.values].sort().join('\n')) {
          throw new ApiError(400, 'InvalidChangeBatch', `[Tried to delete resource record set [name='${set.name}', type='${set.type}'] but the values provided do not match the current values]`);
        }
        next.splice(index, 1);
        continue;
      }
      if (action !== 'UPSERT' && action !== 'CREATE') throw new ApiError(400, 'InvalidInput', `Invalid action ${action}`);
      if (!Number.isInteger(set.ttl) || set.values.length === 0) throw new ApiError(400, 'InvalidInput', 'TTL and ResourceRecords are required');
      if (set.type !== 'CNAME' && next.some((s) => s.name === set.name && s.type === 'CNAME')) {
        throw new ApiError(400, 'InvalidChangeBatch', `[RRSet of type ${set.type} with DNS name ${set.name} is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone ${zone.name}]`);
      }
      if (action === 'CREATE' && index >= 0) throw new ApiError(400, 'InvalidChangeBatch', `[Tried to create resource record set [name='${set.name}', type='${set.type}'] but it already exists]`);
      if (index >= 0) next[index] = set;
      else next.push(set);
    }
    zone.recordSets = next;
    const id = `C${String(this.#nextChange++).padStart(6, '0')}`;
    this.#changes.set(id, { polls: 0, zoneId: zone.id });
    return `<ChangeResourceRecordSetsResponse xmlns="${NS}"><ChangeInfo><Id>/change/${id}</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`;
  }
}
