/**
 * Cloudflare through the official `cloudflare` SDK. Cloudflare blocks every
 * call for five minutes once a user passes 1,200 requests in five minutes,
 * so this adapter paces itself with a token bucket sized to stay under the
 * configured share of that window, and only then retries a 429 after its
 * Retry-After (the SDK's own retries are off so that waits go through the
 * injectable clock). Records are one per TXT value; a write changes records
 * in place first, then adds, then deletes, so the name is never empty
 * between two calls.
 */
import Cloudflare, { APIConnectionError, APIError } from 'cloudflare';
import type { DnsProvider, RecordSetView } from '../types.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { silentLogger, type ProviderDeps, type ProviderLogger } from '../shared/deps.js';
import { ProviderError, describe, redact } from '../shared/errors.js';
import { isInZone, canonicalName, zoneCandidates } from '../shared/names.js';
import { parseRetryAfter, withRetry, type RetryDecision } from '../shared/retry.js';
import { readSecret } from '../shared/secret.js';
import { TokenBucket } from '../shared/token-bucket.js';
import { fromPresentation, toPresentation } from '../shared/txt.js';
import type { CloudflareConfig } from './config.js';

export { cloudflareConfigSchema, type CloudflareConfig } from './config.js';

const NAME = 'cloudflare';

/** Cloudflare's "automatic" TTL, sent as 1, is 300 seconds. */
const AUTOMATIC_TTL = 300;

/** Cloudflare error codes for a record that clashes with a CNAME at the same name. */
const CNAME_CONFLICT_CODES = new Set([81053, 81054]);

interface DnsRecord {
  id: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
}

interface Zone {
  id: string;
  name: string;
}

/** The smallest page interface the adapter walks, so every page request is paced. */
interface Page<T> {
  result: T[];
  hasNextPage(): boolean;
  getNextPage(): Promise<Page<T>>;
}

/** The Cloudflare adapter. */
export class CloudflareProvider implements DnsProvider {
  readonly name = NAME;
  readonly #config: CloudflareConfig;
  readonly #token: string;
  readonly #client: Cloudflare;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #logger: ProviderLogger;
  readonly #bucket: TokenBucket;
  /** fqdn -> the zone that holds it. */
  readonly #zones = new Map<string, Zone>();

  /** @throws ProviderError `secret` when the API token cannot be read. */
  constructor(config: CloudflareConfig, deps: ProviderDeps = {}) {
    this.#config = config;
    this.#token = readSecret(
      NAME,
      'API token',
      { env: config.api_token_env, file: config.api_token_file },
      { env: 'api_token_env', file: 'api_token_file' },
      deps.env ?? process.env,
    );
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
    this.#logger = deps.logger ?? silentLogger;
    this.#client = new Cloudflare({
      apiToken: this.#token,
      // The SDK would otherwise pick up CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL from the environment and send them too.
      apiKey: null,
      apiEmail: null,
      userServiceKey: null,
      maxRetries: 0,
      timeout: config.timeout_seconds * 1000,
      ...(config.base_url !== undefined ? { baseURL: config.base_url } : {}),
    });
    this.#bucket = TokenBucket.forWindow(config.requests_per_5_minutes, 300, config.burst, this.#clock);
  }

  async readTxt(fqdn: string): Promise<string[]> {
    return (await this.inspect(fqdn)).txt;
  }

  async inspect(fqdn: string): Promise<RecordSetView> {
    const zone = await this.#zoneFor(fqdn);
    const records = await this.#recordsAt(zone, fqdn);
    const txt = records.filter((r) => r.type === 'TXT');
    const cname = records.find((r) => r.type === 'CNAME');
    const ns = canonicalName(fqdn) === zone.name ? [] : records.filter((r) => r.type === 'NS');
    // One TTL per RRset in DNS; Cloudflare keeps one per record, so report the smallest: it bounds how stale a cache can be.
    const ttls = txt.map((r) => (r.ttl === 1 ? AUTOMATIC_TTL : r.ttl));
    return {
      txt: txt.map((r) => fromPresentation(r.content)),
      ttl: ttls.length > 0 ? Math.min(...ttls) : null,
      cname: cname === undefined ? null : canonicalName(cname.content),
      delegation: ns.length > 0 ? ns.map((r) => canonicalName(r.content)) : null,
    };
  }

  async writeTxt(fqdn: string, records: string[], opts: { ttl: number }): Promise<void> {
    if (!Number.isInteger(opts.ttl) || opts.ttl < 1) {
      throw new ProviderError(NAME, 'config', `TTL must be a whole number of seconds (1 = automatic), got ${opts.ttl}`);
    }
    const zone = await this.#zoneFor(fqdn);
    const name = canonicalName(fqdn);
    const existing = (await this.#recordsAt(zone, fqdn)).filter((r) => r.type === 'TXT');

    // Records already holding a wanted value stay; the rest are rewritten in place, added or removed.
    const unmatched = [...existing];
    const toWrite: string[] = [];
    const ttlOnly: DnsRecord[] = [];
    for (const record of records) {
      const i = unmatched.findIndex((r) => fromPresentation(r.content) === record);
      if (i < 0) {
        toWrite.push(record);
        continue;
      }
      const [kept] = unmatched.splice(i, 1);
      if (kept && kept.ttl !== opts.ttl) ttlOnly.push(kept);
    }
    const body = (record: string) => ({ zone_id: zone.id, type: 'TXT' as const, name, content: toPresentation(record), ttl: opts.ttl });

    for (const r of ttlOnly) {
      await this.#call(`set TTL of ${name}`, () =>
        this.#client.dns.records.edit(r.id, { zone_id: zone.id, type: 'TXT', name, content: r.content, ttl: opts.ttl }),
      );
    }
    let i = 0;
    for (; i < toWrite.length && i < unmatched.length; i += 1) {
      const target = unmatched[i]!;
      await this.#call(`update TXT at ${name}`, () => this.#client.dns.records.update(target.id, body(toWrite[i]!)));
    }
    for (const record of toWrite.slice(i)) {
      await this.#call(`create TXT at ${name}`, () => this.#client.dns.records.create(body(record)));
    }
    for (const stale of unmatched.slice(i)) {
      await this.#call(`delete TXT at ${name}`, () => this.#client.dns.records.delete(stale.id, { zone_id: zone.id }));
    }
    this.#logger.info({ provider: NAME, fqdn: name, records: records.length, ttl: opts.ttl }, 'TXT set replaced');
  }

  async #zoneFor(fqdn: string): Promise<Zone> {
    const name = canonicalName(fqdn);
    const cached = this.#zones.get(name);
    if (cached) return cached;
    let zone: Zone;
    if (this.#config.zone_id !== undefined) {
      const zoneId = this.#config.zone_id;
      const found = await this.#call(`get zone ${zoneId}`, () => this.#client.zones.get({ zone_id: zoneId }));
      zone = { id: found.id, name: canonicalName(found.name) };
      if (!isInZone(name, zone.name)) {
        throw new ProviderError(NAME, 'config', `${name} is not in the configured zone ${zoneId} (${zone.name})`);
      }
    } else {
      zone = await this.#discoverZone(name);
    }
    this.#zones.set(name, zone);
    return zone;
  }

  async #discoverZone(name: string): Promise<Zone> {
    for (const candidate of zoneCandidates(name)) {
      const zones = await this.#all(`list zones named ${candidate}`, () =>
        this.#client.zones.list({ name: candidate, per_page: Math.min(this.#config.page_size, 50) }),
      );
      const found = zones.filter((z) => canonicalName(z.name) === candidate);
      if (found.length === 1) return { id: found[0]!.id, name: candidate };
      if (found.length > 1) {
        throw new ProviderError(NAME, 'zone-ambiguous', `${found.length} zones named ${candidate} are visible to the token (${found.map((z) => z.id).join(', ')}); set zone_id`);
      }
    }
    throw new ProviderError(NAME, 'zone-not-found', `no zone visible to the API token holds ${name} (looked for ${zoneCandidates(name).join(', ')})`);
  }

  /** Every record at exactly `fqdn`, any type, across all pages. */
  async #recordsAt(zone: Zone, fqdn: string): Promise<DnsRecord[]> {
    const name = canonicalName(fqdn);
    const records = await this.#all(`list records at ${name}`, () =>
      this.#client.dns.records.list({ zone_id: zone.id, name: { exact: name }, per_page: this.#config.page_size }),
    );
    return records
      .map((r) => ({ id: r.id, name: r.name, type: r.type, content: 'content' in r && typeof r.content === 'string' ? r.content : '', ttl: r.ttl }))
      .filter((r) => canonicalName(r.name) === name);
  }

  /** Walks every page of a list, each page request paced and retried on its own. */
  async #all<T>(what: string, first: () => PromiseLike<Page<T>>): Promise<T[]> {
    let page = await this.#call(what, async () => await first());
    const items = [...page.result];
    while (page.hasNextPage()) {
      const current = page;
      page = await this.#call(`${what} (next page)`, () => current.getNextPage());
      items.push(...page.result);
    }
    return items;
  }

  /** One API call: paced, retried on 429/5xx/connection failure, its failure turned into a ProviderError. */
  async #call<T>(what: string, fn: () => PromiseLike<T>): Promise<T> {
    try {
      return await withRetry(
        async () => {
          await this.#bucket.take();
          return await fn();
        },
        {
          provider: NAME,
          what,
          maxAttempts: this.#config.max_attempts,
          maxRetryAfterMs: this.#config.max_retry_after_seconds * 1000,
          clock: this.#clock,
          random: this.#random,
          secrets: [this.#token],
          classify: (error) => this.#classify(error),
          onRetry: (info) => this.#logger.warn({ provider: NAME, what, ...info }, 'Cloudflare refused for now; backing off'),
        },
      );
    } catch (error) {
      throw this.#translate(error, what);
    }
  }

  #classify(error: unknown): RetryDecision {
    if (error instanceof APIConnectionError) return { retry: true, reason: 'connection failed' };
    if (!(error instanceof APIError) || error.status === undefined) return { retry: false };
    if (error.status === 429) {
      const headers = error.headers;
      const ms = headers?.get('retry-after-ms');
      const retryAfterMs = ms ? Number(ms) : parseRetryAfter(headers?.get('retry-after'), this.#clock.now());
      return { retry: true, retryAfterMs, reason: 'HTTP 429' };
    }
    if (error.status >= 500) return { retry: true, reason: `HTTP ${error.status}` };
    return { retry: false };
  }

  #translate(error: unknown, what: string): ProviderError {
    if (error instanceof ProviderError) return error;
    if (!(error instanceof APIError) || error.status === undefined) {
      return new ProviderError(NAME, 'api', `${what}: ${describe(error, [this.#token])}`);
    }
    const detail = redact(
      error.errors.length > 0 ? error.errors.map((e) => `${e.code} ${e.message}`).join('; ') : describe(error),
      [this.#token],
    );
    const status = error.status;
    if (status === 401 || status === 403) {
      const where = this.#config.api_token_env !== undefined ? `environment variable ${this.#config.api_token_env}` : `file ${this.#config.api_token_file}`;
      return new ProviderError(NAME, 'secret', `${what}: Cloudflare rejected the API token from ${where} (HTTP ${status}: ${detail}); it needs Zone Read and DNS Edit on the zone`, status);
    }
    if (error.errors.some((e) => e.code !== undefined && CNAME_CONFLICT_CODES.has(e.code))) {
      return new ProviderError(NAME, 'conflict', `${what}: ${detail}`, status);
    }
    if (status === 404 && what.startsWith('get zone')) return new ProviderError(NAME, 'zone-not-found', `${what}: ${detail}`, status);
    return new ProviderError(NAME, 'api', `${what}: HTTP ${status}: ${detail}`, status);
  }
}
