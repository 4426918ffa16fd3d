/**
 * PowerDNS through its HTTP API. A write is one PATCH with changetype
 * REPLACE, which replaces the whole RRset: so it always carries the complete
 * desired set, never a delta. Names are absolute (trailing dot) and TXT
 * content is in presentation format, split into 255-octet strings.
 */
import { AppError } from '../../src/errors.js';
import type { DnsProvider, RecordSetView } from '../types.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { silentLogger, type ProviderDeps, type ProviderLogger } from '../shared/deps.js';
import { ProviderError, describe, redact } from '../shared/errors.js';
import { absoluteName, isInZone, canonicalName, zoneCandidates } from '../shared/names.js';
import { parseRetryAfter, withRetry } from '../shared/retry.js';
import { readSecret } from '../shared/secret.js';
import { fromPresentation, toPresentation } from '../shared/txt.js';
import type { PowerdnsConfig } from './config.js';

export { powerdnsConfigSchema, type PowerdnsConfig } from './config.js';

const NAME = 'powerdns';

interface ApiRrset {
  name: string;
  type: string;
  ttl: number;
  records: { content: string; disabled: boolean }[];
}

interface ApiZone {
  id: string;
  name: string;
  rrsets?: ApiRrset[];
}

/** An answer worth trying again (overload, proxy throttling, restart); withRetry() turns the last one into a ProviderError. */
class RetryableHttp extends AppError {
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super('unavailable', `HTTP ${status}`);
  }
}

/** The PowerDNS adapter. */
export class PowerdnsProvider implements DnsProvider {
  readonly name = NAME;
  readonly #config: PowerdnsConfig;
  readonly #apiKey: string;
  readonly #base: string;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #logger: ProviderLogger;
  /** Zone name -> API zone id, so discovery runs once per zone. */
  readonly #zoneIds = new Map<string, string>();

  /** @throws ProviderError `secret` when the API key cannot be read. */
  constructor(config: PowerdnsConfig, deps: ProviderDeps = {}) {
    this.#config = config;
    this.#apiKey = readSecret(
      NAME,
      'API key',
      { env: config.api_key_env, file: config.api_key_file },
      { env: 'api_key_env', file: 'api_key_file' },
      deps.env ?? process.env,
    );
    const trimmed = config.api_url.replace(/\/+$/, '');
    const api = trimmed.endsWith('/api/v1') ? trimmed : `${trimmed}/api/v1`;
    this.#base = `${api}/servers/${encodeURIComponent(config.server_id)}`;
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
    this.#logger = deps.logger ?? silentLogger;
  }

  async readTxt(fqdn: string): Promise<string[]> {
    return (await this.inspect(fqdn)).txt;
  }

  async inspect(fqdn: string): Promise<RecordSetView> {
    const zone = await this.#zoneFor(fqdn);
    const rrsets = await this.#rrsetsAt(zone, fqdn);
    const txtSet = rrsets.find((r) => r.type === 'TXT');
    const cnameSet = rrsets.find((r) => r.type === 'CNAME');
    const nsSet = canonicalName(fqdn) === zone.name ? undefined : rrsets.find((r) => r.type === 'NS');
    const live = (set: ApiRrset | undefined): string[] =>
      (set?.records ?? []).filter((r) => !r.disabled).map((r) => r.content);
    const cname = live(cnameSet)[0];
    return {
      txt: live(txtSet).map(fromPresentation),
      ttl: txtSet && live(txtSet).length > 0 ? txtSet.ttl : null,
      cname: cname === undefined ? null : canonicalName(cname),
      delegation: nsSet ? live(nsSet).map(canonicalName) : null,
    };
  }

  async writeTxt(fqdn: string, records: string[], opts: { ttl: number }): Promise<void> {
    if (!Number.isInteger(opts.ttl) || opts.ttl < 0) {
      throw new ProviderError(NAME, 'config', `TTL must be a whole number of seconds, got ${opts.ttl}`);
    }
    const zone = await this.#zoneFor(fqdn);
    const rrset =
      records.length === 0
        ? { name: absoluteName(fqdn), type: 'TXT', changetype: 'DELETE' }
        : {
            name: absoluteName(fqdn),
            type: 'TXT',
            ttl: opts.ttl,
            changetype: 'REPLACE',
            records: records.map((r) => ({ content: toPresentation(r), disabled: false })),
          };
    await this.#request('PATCH', `/zones/${encodeURIComponent(zone.id)}`, `replace TXT at ${canonicalName(fqdn)}`, {
      rrsets: [rrset],
    });
    this.#logger.info({ provider: NAME, fqdn: canonicalName(fqdn), records: records.length, ttl: opts.ttl }, 'TXT set replaced');
  }

  /** The zone holding `fqdn`: the configured one, or the longest the server has. */
  async #zoneFor(fqdn: string): Promise<{ id: string; name: string }> {
    const name = canonicalName(fqdn);
    if (this.#config.zone !== undefined) {
      const zone = canonicalName(this.#config.zone);
      if (!isInZone(name, zone)) {
        throw new ProviderError(NAME, 'config', `${name} is not in the configured zone ${zone}`);
      }
      const id = await this.#zoneId(zone);
      if (id === null) throw new ProviderError(NAME, 'zone-not-found', `the configured zone ${zone} does not exist on the server`);
      return { id, name: zone };
    }
    for (const candidate of zoneCandidates(name)) {
      const id = await this.#zoneId(candidate);
      if (id !== null) return { id, name: candidate };
    }
    throw new ProviderError(NAME, 'zone-not-found', `no zone on the server holds ${name} (looked for ${zoneCandidates(name).join(', ')})`);
  }

  async #zoneId(zone: string): Promise<string | null> {
    const cached = this.#zoneIds.get(zone);
    if (cached !== undefined) return cached;
    const zones = (await this.#request('GET', `/zones?zone=${encodeURIComponent(absoluteName(zone))}`, `look up zone ${zone}`)) as ApiZone[];
    const match = zones.find((z) => canonicalName(z.name) === zone);
    if (match === undefined) return null;
    this.#zoneIds.set(zone, match.id);
    return match.id;
  }

  async #rrsetsAt(zone: { id: string; name: string }, fqdn: string): Promise<ApiRrset[]> {
    const path = `/zones/${encodeURIComponent(zone.id)}?rrset_name=${encodeURIComponent(absoluteName(fqdn))}`;
    const body = (await this.#request('GET', path, `read ${canonicalName(fqdn)}`)) as ApiZone;
    // rrset_name is a filter the server may ignore (older versions): filter again.
    return (body.rrsets ?? []).filter((r) => canonicalName(r.name) === canonicalName(fqdn));
  }

  async #request(method: string, path: string, what: string, body?: unknown): Promise<unknown> {
    return withRetry(
      async () => {
        let res: Response;
        try {
          res = await fetch(`${this.#base}${path}`, {
            method,
            headers: { 'X-API-Key': this.#apiKey, Accept: 'application/json', 'Content-Type': 'application/json' },
            signal: AbortSignal.timeout(this.#config.timeout_seconds * 1000),
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          });
        } catch (error) {
          throw new ProviderError(NAME, 'api', `${what}: cannot reach ${this.#config.api_url}: ${describe(error, [this.#apiKey])}`);
        }
        const text = await res.text();
        if (res.status === 429 || res.status >= 500) {
          throw new RetryableHttp(res.status, parseRetryAfter(res.headers.get('retry-after'), this.#clock.now()));
        }
        if (res.status === 401 || res.status === 403) {
          const where = this.#config.api_key_env !== undefined ? `environment variable ${this.#config.api_key_env}` : `file ${this.#config.api_key_file}`;
          throw new ProviderError(NAME, 'secret', `${what}: the server rejected the API key from ${where} (HTTP ${res.status})`, res.status);
        }
        if (!res.ok) {
          // 422 is PowerDNS refusing the RRset itself (a TXT beside a CNAME, content it cannot store): a conflict,
          // as Route 53 and Cloudflare report the same refusal, and nothing a retry can change.
          const kind = res.status === 404 ? 'zone-not-found' : res.status === 422 ? 'conflict' : 'api';
          throw new ProviderError(NAME, kind, `${what}: HTTP ${res.status}: ${this.#serverMessage(text)}`, res.status);
        }
        return text === '' ? null : (JSON.parse(text) as unknown);
      },
      {
        provider: NAME,
        what,
        maxAttempts: this.#config.max_attempts,
        clock: this.#clock,
        random: this.#random,
        secrets: [this.#apiKey],
        classify: (error) => {
          if (error instanceof RetryableHttp) return { retry: true, retryAfterMs: error.retryAfterMs, reason: error.message };
          if (error instanceof ProviderError && error.status === undefined && error.kind === 'api') {
            return { retry: true, reason: 'connection failed' };
          }
          return { retry: false };
        },
        onRetry: (info) => this.#logger.warn({ provider: NAME, what, ...info }, 'retrying PowerDNS API call'),
      },
    );
  }

  /** PowerDNS puts its reason in `error`; anything else is shown cut short, secrets removed. */
  #serverMessage(text: string): string {
    let message = text;
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (typeof parsed.error === 'string') message = parsed.error;
    } catch {
      // not JSON: show the text
    }
    return redact(message.slice(0, 300), [this.#apiKey]);
  }
}
