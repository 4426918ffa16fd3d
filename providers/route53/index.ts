/**
 * Route 53 through @aws-sdk/client-route-53. A write is one UPSERT of the
 * whole TXT RRset (DELETE with the exact current set to empty it), then
 * GetChange until INSYNC. Route 53 refuses a change while the zone's previous
 * one is pending (PriorRequestNotComplete) and throttles the whole account
 * past five requests a second, so: one change in flight per zone, every call
 * paced by a token bucket, and throttling retried here with jittered backoff
 * (the SDK's own retries are off so that the clock is ours and injectable).
 */
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  GetHostedZoneCommand,
  ListHostedZonesByNameCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
  type Change,
  type ResourceRecordSet,
  type RRType,
} from '@aws-sdk/client-route-53';
import type { DnsProvider, RecordSetView } from '../types.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { silentLogger, type ProviderDeps, type ProviderLogger } from '../shared/deps.js';
import { ProviderError, describe } from '../shared/errors.js';
import { absoluteName, isInZone, canonicalName, zoneCandidates } from '../shared/names.js';
import { withRetry, type RetryDecision } from '../shared/retry.js';
import type { Environment } from '../shared/secret.js';
import { TokenBucket } from '../shared/token-bucket.js';
import { fromRoute53Txt, toRoute53Txt } from './txt.js';
import type { Route53Config } from './config.js';

export { route53ConfigSchema, type Route53Config } from './config.js';

const NAME = 'route53';

/** Error codes that mean "not now": the request was refused before doing anything. */
const RETRYABLE_CODES = new Set([
  'Throttling',
  'ThrottlingException',
  'PriorRequestNotComplete',
  'ServiceUnavailable',
  'InternalFailure',
  'InternalError',
  'RequestTimeout',
]);

/** Error codes that mean the credentials, not the request, are wrong. */
const CREDENTIAL_CODES = new Set([
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'MissingAuthenticationToken',
  'AccessDenied',
  'AccessDeniedException',
]);

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

interface Zone {
  id: string;
  name: string;
}

/** Route 53 shows names with octal escapes (`\052` for `*`); undo them before comparing. */
function decodeName(name: string): string {
  return canonicalName(name.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}

function bareZoneId(id: string): string {
  return id.replace(/^\/hostedzone\//, '');
}

/** The Route 53 adapter. */
export class Route53Provider implements DnsProvider {
  readonly name = NAME;
  readonly #config: Route53Config;
  readonly #client: Route53Client;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #logger: ProviderLogger;
  readonly #bucket: TokenBucket;
  readonly #secrets: string[];
  /** fqdn -> the zone that holds it. */
  readonly #zones = new Map<string, Zone>();
  /** Zone id -> the tail of its queue of writes: one change in flight per zone. */
  readonly #zoneQueues = new Map<string, Promise<void>>();

  /** @throws ProviderError `secret` when `credential_source: env` and the keys are not set. */
  constructor(config: Route53Config, deps: ProviderDeps = {}) {
    this.#config = config;
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
    this.#logger = deps.logger ?? silentLogger;
    const credentials = Route53Provider.#envCredentials(config, deps.env ?? process.env);
    this.#secrets = credentials ? [credentials.secretAccessKey, ...(credentials.sessionToken ? [credentials.sessionToken] : [])] : [];
    this.#client = new Route53Client({
      region: config.region,
      maxAttempts: 1,
      ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
      ...(config.profile !== undefined ? { profile: config.profile } : {}),
      ...(credentials ? { credentials } : {}),
    });
    // Burst of the rate itself: Route 53's bucket is small and shared with every other caller in the account.
    this.#bucket = new TokenBucket({
      capacity: Math.max(1, Math.floor(config.requests_per_second)),
      refillPerSecond: config.requests_per_second,
      clock: this.#clock,
    });
  }

  static #envCredentials(
    config: Route53Config,
    env: Environment,
  ): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
    const accessKeyId = env['AWS_ACCESS_KEY_ID']?.trim();
    const secretAccessKey = env['AWS_SECRET_ACCESS_KEY']?.trim();
    const sessionToken = env['AWS_SESSION_TOKEN']?.trim();
    if (accessKeyId && secretAccessKey) {
      return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    }
    if (config.credential_source === 'env') {
      const missing = [!accessKeyId ? 'AWS_ACCESS_KEY_ID' : null, !secretAccessKey ? 'AWS_SECRET_ACCESS_KEY' : null].filter(Boolean);
      throw new ProviderError(NAME, 'secret', `AWS credentials missing: environment variable ${missing.join(' and ')} not set (credential_source: env)`);
    }
    return undefined;
  }

  /** Closes the SDK's connections; the provider is unusable after. */
  close(): void {
    this.#client.destroy();
  }

  async readTxt(fqdn: string): Promise<string[]> {
    return (await this.inspect(fqdn)).txt;
  }

  async inspect(fqdn: string): Promise<RecordSetView> {
    const zone = await this.#zoneFor(fqdn);
    const sets = await this.#setsAt(zone, fqdn);
    const txtSets = sets.filter((s) => s.Type === 'TXT');
    if (txtSets.length > 1) {
      throw new ProviderError(NAME, 'conflict', `${canonicalName(fqdn)} has ${txtSets.length} TXT record sets (a routing policy); only a simple record can be managed`);
    }
    const txt = txtSets[0];
    const cname = sets.find((s) => s.Type === 'CNAME')?.ResourceRecords?.[0]?.Value;
    const ns = canonicalName(fqdn) === zone.name ? undefined : sets.find((s) => s.Type === 'NS');
    return {
      txt: (txt?.ResourceRecords ?? []).map((r) => fromRoute53Txt(r.Value ?? '')),
      ttl: txt?.TTL ?? null,
      cname: cname === undefined ? null : canonicalName(cname),
      delegation: ns ? (ns.ResourceRecords ?? []).map((r) => canonicalName(r.Value ?? '')) : null,
    };
  }

  async writeTxt(fqdn: string, records: string[], opts: { ttl: number }): Promise<void> {
    if (!Number.isInteger(opts.ttl) || opts.ttl < 0) {
      throw new ProviderError(NAME, 'config', `TTL must be a whole number of seconds, got ${opts.ttl}`);
    }
    const zone = await this.#zoneFor(fqdn);
    await this.#oneAtATime(zone.id, async () => {
      let change: Change;
      if (records.length === 0) {
        // DELETE must name the exact current set, so read it inside the zone's turn.
        const current = (await this.#setsAt(zone, fqdn)).find((s) => s.Type === 'TXT');
        if (current === undefined) return;
        change = { Action: 'DELETE', ResourceRecordSet: current };
      } else {
        change = {
          Action: 'UPSERT',
          ResourceRecordSet: {
            Name: absoluteName(fqdn),
            Type: 'TXT',
            TTL: opts.ttl,
            ResourceRecords: records.map((r) => ({ Value: toRoute53Txt(r) })),
          },
        };
      }
      const out = await this.#call(`change TXT at ${canonicalName(fqdn)}`, () =>
        this.#client.send(
          new ChangeResourceRecordSetsCommand({
            HostedZoneId: zone.id,
            ChangeBatch: { Comment: 'dmarc-rollout', Changes: [change] },
          }),
        ),
      );
      const changeId = out.ChangeInfo?.Id;
      if (changeId === undefined) throw new ProviderError(NAME, 'api', 'ChangeResourceRecordSets returned no change id');
      this.#logger.info({ provider: NAME, fqdn: canonicalName(fqdn), change: changeId, records: records.length }, 'change submitted');
      await this.#waitInsync(changeId, out.ChangeInfo?.Status);
    });
  }

  async #waitInsync(changeId: string, initial: string | undefined): Promise<void> {
    const deadline = this.#clock.now() + this.#config.change_timeout_seconds * 1000;
    let status = initial;
    while (status !== 'INSYNC') {
      if (this.#clock.now() >= deadline) {
        throw new ProviderError(NAME, 'timeout', `change ${changeId} still ${status ?? 'unknown'} after ${this.#config.change_timeout_seconds} s`);
      }
      await this.#clock.sleep(this.#config.poll_seconds * 1000);
      const out = await this.#call(`get change ${changeId}`, () => this.#client.send(new GetChangeCommand({ Id: changeId })));
      status = out.ChangeInfo?.Status;
    }
  }

  /** Runs `fn` after every earlier write to the same zone has finished. */
  async #oneAtATime(zoneId: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.#zoneQueues.get(zoneId) ?? Promise.resolve();
    const turn = previous.then(fn);
    const tail = turn.catch(() => undefined);
    this.#zoneQueues.set(zoneId, tail);
    try {
      await turn;
    } finally {
      if (this.#zoneQueues.get(zoneId) === tail) this.#zoneQueues.delete(zoneId);
    }
  }

  async #zoneFor(fqdn: string): Promise<Zone> {
    const name = canonicalName(fqdn);
    const cached = this.#zones.get(name);
    if (cached) return cached;
    let zone: Zone;
    if (this.#config.hosted_zone_id !== undefined) {
      const id = bareZoneId(this.#config.hosted_zone_id);
      const out = await this.#call(`get hosted zone ${id}`, () => this.#client.send(new GetHostedZoneCommand({ Id: id })));
      zone = { id, name: decodeName(out.HostedZone?.Name ?? '') };
      if (!isInZone(name, zone.name)) {
        throw new ProviderError(NAME, 'config', `${name} is not in the configured hosted zone ${id} (${zone.name})`);
      }
    } else {
      zone = await this.#discoverZone(name);
    }
    this.#zones.set(name, zone);
    return zone;
  }

  /** The longest public hosted zone named like an ancestor of `name`. */
  async #discoverZone(name: string): Promise<Zone> {
    for (const candidate of zoneCandidates(name)) {
      const found: Zone[] = [];
      let dnsName: string | undefined = candidate;
      let zoneId: string | undefined;
      for (;;) {
        const out = await this.#call(`list hosted zones named ${candidate}`, () =>
          this.#client.send(
            new ListHostedZonesByNameCommand({ DNSName: dnsName, HostedZoneId: zoneId, MaxItems: this.#config.page_size }),
          ),
        );
        let past = false;
        for (const z of out.HostedZones ?? []) {
          if (decodeName(z.Name ?? '') !== candidate) {
            past = true;
            break;
          }
          // A private zone is not what receivers see.
          if (!z.Config?.PrivateZone && z.Id) found.push({ id: bareZoneId(z.Id), name: candidate });
        }
        if (past || !out.IsTruncated || out.NextDNSName === undefined) break;
        if (decodeName(out.NextDNSName) !== candidate) break;
        dnsName = out.NextDNSName;
        zoneId = out.NextHostedZoneId;
      }
      if (found.length === 1) return found[0]!;
      if (found.length > 1) {
        throw new ProviderError(NAME, 'zone-ambiguous', `${found.length} public hosted zones are named ${candidate} (${found.map((z) => z.id).join(', ')}); set hosted_zone_id`);
      }
    }
    throw new ProviderError(NAME, 'zone-not-found', `no public hosted zone in the account holds ${name} (looked for ${zoneCandidates(name).join(', ')})`);
  }

  /** Every record set at exactly `fqdn`, following NextRecordName/Type across pages. */
  async #setsAt(zone: Zone, fqdn: string): Promise<ResourceRecordSet[]> {
    const target = canonicalName(fqdn);
    const sets: ResourceRecordSet[] = [];
    let startName: string | undefined = absoluteName(fqdn);
    let startType: RRType | undefined;
    let startIdentifier: string | undefined;
    for (;;) {
      const out = await this.#call(`list record sets at ${target}`, () =>
        this.#client.send(
          new ListResourceRecordSetsCommand({
            HostedZoneId: zone.id,
            StartRecordName: startName,
            StartRecordType: startType,
            StartRecordIdentifier: startIdentifier,
            MaxItems: this.#config.page_size,
          }),
        ),
      );
      let past = false;
      for (const set of out.ResourceRecordSets ?? []) {
        if (decodeName(set.Name ?? '') !== target) {
          past = true;
          break;
        }
        sets.push(set);
      }
      if (past || !out.IsTruncated || out.NextRecordName === undefined || decodeName(out.NextRecordName) !== target) break;
      startName = out.NextRecordName;
      startType = out.NextRecordType;
      startIdentifier = out.NextRecordIdentifier;
    }
    return sets;
  }

  /** One API call: paced, retried while throttled, its failure turned into a ProviderError. */
  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(
        async () => {
          await this.#bucket.take();
          return fn();
        },
        {
          provider: NAME,
          what,
          maxAttempts: this.#config.max_attempts,
          clock: this.#clock,
          random: this.#random,
          secrets: this.#secrets,
          classify: (error) => this.#classify(error),
          onRetry: (info) => this.#logger.warn({ provider: NAME, what, ...info }, 'Route 53 refused for now; backing off'),
        },
      );
    } catch (error) {
      throw this.#translate(error, what);
    }
  }

  #classify(error: unknown): RetryDecision {
    const e = error as SdkError;
    const code = e.name ?? '';
    const status = e.$metadata?.httpStatusCode;
    if (RETRYABLE_CODES.has(code)) return { retry: true, reason: code };
    if (status !== undefined && status >= 500) return { retry: true, reason: `HTTP ${status}` };
    if (status === undefined && ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE'].includes(e.code ?? '')) {
      return { retry: true, reason: e.code };
    }
    return { retry: false };
  }

  #translate(error: unknown, what: string): ProviderError {
    if (error instanceof ProviderError) return error;
    const e = error as SdkError;
    const code = e.name ?? 'Error';
    const status = e.$metadata?.httpStatusCode;
    const message = describe(error, this.#secrets);
    if (code === 'CredentialsProviderError') {
      return new ProviderError(
        NAME,
        'secret',
        `AWS credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (profile / AWS_PROFILE) in ~/.aws/credentials, or run with an IAM role (${message})`,
      );
    }
    if (CREDENTIAL_CODES.has(code)) {
      return new ProviderError(NAME, 'secret', `${what}: AWS refused the credentials (${code}: ${message})`, status);
    }
    if (code === 'NoSuchHostedZone') return new ProviderError(NAME, 'zone-not-found', `${what}: ${message}`, status);
    if (code === 'InvalidChangeBatch') return new ProviderError(NAME, 'conflict', `${what}: ${message}`, status);
    return new ProviderError(NAME, 'api', `${what}: ${code}: ${message}`, status);
  }
}
