/**
 * A small Cloudflare API v4 on loopback, enough for the official `cloudflare`
 * SDK pointed at it with `baseURL`: zones by name, DNS records filtered by
 * type and name with page/per_page paging and `result_info` (an empty page
 * past the last, which is how the SDK's iterator stops), create/update/
 * edit/delete, bearer-token auth, the v4 envelope (`success`, `errors`,
 * `messages`, `result`), TXT content checked as quoted 255-octet strings,
 * and 429 with `retry-after` on demand, or any other error to the requests a
 * predicate picks (a list's second page). Every request is recorded.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** A DNS record as the fake stores it. */
export interface FakeDnsRecord {
  id: string;
  zone_id: string;
  zone_name: string;
  /** Full name without the final dot, lowercase. */
  name: string;
  type: string;
  content: string;
  ttl: number;
  proxied: boolean;
}

/** A zone as the fake stores it. */
export interface FakeZone {
  id: string;
  name: string;
  status: 'active' | 'pending';
}

/** A request as the server saw it. */
export interface CfRecordedRequest {
  method: string;
  /** Path below the API base, e.g. `/zones/abc/dns_records`. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: unknown;
  status: number;
}

/** An error to answer instead of serving a request. */
export interface CfFault {
  times: number;
  status: number;
  /** Cloudflare's error code in the envelope, e.g. 1004 (DNS validation) or 10000 (authentication). */
  code: number;
  message: string;
  when?: (request: CfRecordedRequest) => boolean;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function id(): string {
  return randomBytes(16).toString('hex');
}

/** Character-strings of quoted TXT content, or null when the quoting is broken. */
function quotedStrings(content: string): string[] | null {
  const out: string[] = [];
  const re = /\s*"((?:[^"\\]|\\.)*)"\s*/gy;
  let end = 0;
  let match: RegExpExecArray | null;
  while ((match = re.exec(content)) !== null) {
    out.push((match[1] ?? '').replace(/\\(.)/g, '$1'));
    end = re.lastIndex;
    if (end === content.length) break;
  }
  return end === content.length && out.length > 0 ? out : null;
}

/** A running fake Cloudflare API. */
export class CloudflareServer {
  readonly requests: CfRecordedRequest[] = [];
  readonly zones: FakeZone[] = [];
  readonly records: FakeDnsRecord[] = [];
  /** The token requests must carry as `Authorization: Bearer ...`. */
  token = 'cf-test-token';
  #server: Server | null = null;
  #baseUrl = '';
  /** Requests left to answer 429, and the retry-after (seconds) to send. */
  #throttle = { times: 0, retryAfter: '1' };
  /** Errors to answer instead of serving the requests they pick. */
  readonly #faults: CfFault[] = [];

  /** API base for the SDK's `baseURL`: `http://127.0.0.1:PORT/client/v4`. */
  get baseUrl(): string {
    return this.#baseUrl;
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
    if (address === null || typeof address !== 'object') throw new Error('cloudflare fake: no address');
    this.#baseUrl = `http://127.0.0.1:${address.port}/client/v4`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  /** Forgets zones, records, requests and pending throttling. */
  reset(): void {
    this.zones.length = 0;
    this.records.length = 0;
    this.requests.length = 0;
    this.#throttle = { times: 0, retryAfter: '1' };
    this.#faults.length = 0;
  }

  addZone(name: string, status: FakeZone['status'] = 'active'): FakeZone {
    const zone = { id: id(), name: name.toLowerCase(), status };
    this.zones.push(zone);
    return zone;
  }

  addRecord(zone: FakeZone, record: { name: string; type: string; content: string; ttl?: number }): FakeDnsRecord {
    const stored: FakeDnsRecord = {
      id: id(),
      zone_id: zone.id,
      zone_name: zone.name,
      name: record.name.toLowerCase().replace(/\.$/, ''),
      type: record.type,
      content: record.content,
      ttl: record.ttl ?? 1,
      proxied: false,
    };
    this.records.push(stored);
    return stored;
  }

  /** Records at `name` (and of `type`, when given). */
  recordsAt(name: string, type?: string): FakeDnsRecord[] {
    return this.records.filter((r) => r.name === name.toLowerCase() && (type === undefined || r.type === type));
  }

  /** Answers the next `times` requests with 429 and `retry-after: retryAfter`, as when the token's window is used up. */
  throttle(times: number, retryAfter = '1'): void {
    this.#throttle = { times, retryAfter };
  }

  /** Answers the next `fault.times` requests that `fault.when` picks (default: any) with an error in the v4 envelope. */
  fail(fault: CfFault): void {
    this.#faults.push({ ...fault });
  }

  /** Drops the faults and throttling not yet answered. */
  clearFaults(): void {
    this.#faults.length = 0;
    this.#throttle = { times: 0, retryAfter: '1' };
  }

  /** Recorded requests, optionally only those of one method. */
  calls(method?: string): CfRecordedRequest[] {
    return this.requests.filter((r) => method === undefined || r.method === method);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/^\/client\/v4/, '');
    let body: unknown = null;
    const record: CfRecordedRequest = { method: req.method ?? 'GET', path, query: url.searchParams, headers: req.headers, body, status: 0 };
    this.requests.push(record);
    try {
      if (raw !== '') {
        try {
          body = JSON.parse(raw);
        } catch {
          throw new ApiError(400, 6007, 'Malformed JSON in request body');
        }
        record.body = body;
      }
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        throw new ApiError(403, 10000, 'Authentication error');
      }
      if (this.#throttle.times > 0) {
        this.#throttle.times -= 1;
        throw new ApiError(429, 971, 'Please wait and consider throttling your request speed', {
          'retry-after': this.#throttle.retryAfter,
        });
      }
      const fault = this.#faults.find((f) => f.times > 0 && (f.when === undefined || f.when(record)));
      if (fault) {
        fault.times -= 1;
        throw new ApiError(fault.status, fault.code, fault.message);
      }
      const { result, resultInfo } = this.#route(record.method, path, url.searchParams, body);
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: true, errors: [], messages: [], result, ...(resultInfo ? { result_info: resultInfo } : {}) }));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      record.status = error.status;
      res.writeHead(error.status, { 'content-type': 'application/json', ...error.headers });
      res.end(JSON.stringify({ success: false, errors: [{ code: error.code, message: error.message }], messages: [], result: null }));
    }
  }

  #page<T>(items: T[], query: URLSearchParams, defaultPerPage: number, maxPerPage: number): { result: T[]; resultInfo: object } {
    const page = Number(query.get('page') ?? '1');
    const perPage = Number(query.get('per_page') ?? String(defaultPerPage));
    if (!Number.isInteger(page) || page < 1) throw new ApiError(400, 1001, 'page must be a positive integer');
    if (!Number.isInteger(perPage) || perPage < 5 || perPage > maxPerPage) {
      throw new ApiError(400, 1001, `per_page must be between 5 and ${maxPerPage}`);
    }
    const result = items.slice((page - 1) * perPage, page * perPage);
    return {
      result,
      resultInfo: {
        page,
        per_page: perPage,
        count: result.length,
        total_count: items.length,
        total_pages: Math.max(1, Math.ceil(items.length / perPage)),
      },
    };
  }

  #zone(zoneId: string): FakeZone {
    const zone = this.zones.find((z) => z.id === zoneId);
    if (!zone) throw new ApiError(404, 7003, 'Could not route to /zones/' + zoneId + ', perhaps your object identifier is invalid?');
    return zone;
  }

  #route(method: string, path: string, query: URLSearchParams, body: unknown): { result: unknown; resultInfo?: object } {
    if (method === 'GET' && path === '/zones') {
      const name = query.get('name');
      const zones = this.zones.filter((z) => name === null || z.name === name.toLowerCase());
      return this.#page(
        zones.map((z) => ({ id: z.id, name: z.name, status: z.status, paused: false, type: 'full', name_servers: ['ada.ns.cloudflare.com', 'bob.ns.cloudflare.com'] })),
        query,
        20,
        50,
      );
    }
    const zonePath = /^\/zones\/([^/]+)$/.exec(path);
    if (method === 'GET' && zonePath) {
      const z = this.#zone(zonePath[1] ?? '');
      return { result: { id: z.id, name: z.name, status: z.status, paused: false, type: 'full' } };
    }
    const recordsPath = /^\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(path);
    if (!recordsPath) throw new ApiError(404, 7000, 'No route for that URI');
    const zone = this.#zone(recordsPath[1] ?? '');
    const recordId = recordsPath[2];
    if (method === 'GET' && recordId === undefined) {
      const type = query.get('type');
      const name = (query.get('name.exact') ?? query.get('name'))?.toLowerCase().replace(/\.$/, '');
      const found = this.records.filter(
        (r) => r.zone_id === zone.id && (type === null || r.type === type) && (name === undefined || r.name === name),
      );
      return this.#page(found, query, 100, 5_000_000);
    }
    if (method === 'POST' && recordId === undefined) {
      const input = this.#validate(zone, body, true);
      const created: FakeDnsRecord = { id: id(), zone_id: zone.id, zone_name: zone.name, proxied: false, ...input };
      this.records.push(created);
      return { result: this.#view(created) };
    }
    const index = this.records.findIndex((r) => r.id === recordId && r.zone_id === zone.id);
    const existing = this.records[index];
    if (existing === undefined) throw new ApiError(404, 81044, 'Record does not exist.');
    if (method === 'DELETE') {
      this.records.splice(index, 1);
      return { result: { id: existing.id } };
    }
    if (method === 'PUT') {
      const input = this.#validate(zone, body, true, existing.id);
      this.records[index] = { ...existing, ...input };
      return { result: this.#view(this.records[index]!) };
    }
    if (method === 'PATCH') {
      const merged = { name: existing.name, type: existing.type, content: existing.content, ttl: existing.ttl, ...(body as object) };
      const input = this.#validate(zone, merged, true, existing.id);
      this.records[index] = { ...existing, ...input };
      return { result: this.#view(this.records[index]!) };
    }
    throw new ApiError(405, 10405, 'Method not allowed');
  }

  #view(r: FakeDnsRecord): object {
    return { ...r, proxiable: false, settings: {}, meta: {}, comment: null, tags: [], created_on: '2026-01-01T00:00:00Z', modified_on: '2026-01-01T00:00:00Z' };
  }

  #validate(zone: FakeZone, body: unknown, full: boolean, selfId?: string): Pick<FakeDnsRecord, 'name' | 'type' | 'content' | 'ttl'> {
    const b = (body ?? {}) as Record<string, unknown>;
    const name = typeof b['name'] === 'string' ? b['name'].toLowerCase().replace(/\.$/, '') : '';
    const type = typeof b['type'] === 'string' ? b['type'] : '';
    const content = typeof b['content'] === 'string' ? b['content'] : '';
    const ttl = typeof b['ttl'] === 'number' ? b['ttl'] : 1;
    if (full && (name === '' || type === '' || content === '')) throw new ApiError(400, 9005, 'name, type and content are required');
    if (name !== zone.name && !name.endsWith(`.${zone.name}`)) throw new ApiError(400, 9007, `Content for ${type} record is invalid: name is outside the zone`);
    if (ttl !== 1 && (ttl < 60 || ttl > 86400)) throw new ApiError(400, 9021, 'Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.');
    if (type === 'TXT') {
      if (content.length > 2048) throw new ApiError(400, 9100, 'DNS record content is too long: TXT content is limited to 2048 characters');
      if (content.startsWith('"')) {
        const strings = quotedStrings(content);
        if (strings === null) throw new ApiError(400, 9007, 'Content for TXT record is invalid: unbalanced quotes');
        if (strings.some((s) => Buffer.byteLength(s) > 255)) {
          throw new ApiError(400, 9007, 'Content for TXT record is invalid: a character-string is longer than 255 bytes');
        }
      }
    }
    const others = this.records.filter((r) => r.zone_id === zone.id && r.name === name && r.id !== selfId);
    if (type !== 'CNAME' && others.some((r) => r.type === 'CNAME')) throw new ApiError(400, 81054, 'A CNAME record with that host already exists.');
    if (others.some((r) => r.type === type && r.content === content)) throw new ApiError(400, 81058, 'An identical record already exists.');
    return { name, type, content, ttl };
  }
}
