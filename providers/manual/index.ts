/**
 * The manual provider, for zones no API can reach: a write prints the exact
 * record set to publish (already split into quoted 255-octet strings, as a
 * zone file line), then waits until every server it checks serves exactly
 * that set. Reads are real DNS queries, so what it reports is what receivers
 * see. It holds no secret.
 */
import type { Writable } from 'node:stream';
import { authoritativeServers, delegationAt, nsRecordsAt, queryTxtEach, type ServerAnswer } from '../../src/dns/index.js';
import type { DnsProvider, RecordSetView } from '../types.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { silentLogger, type ProviderDeps, type ProviderLogger } from '../shared/deps.js';
import { errorMessage } from '../../src/errors.js';
import { ProviderError } from '../shared/errors.js';
import { absoluteName, canonicalName, sameRecords } from '../shared/names.js';
import { toPresentation } from '../shared/txt.js';
import type { ManualConfig } from './config.js';

export { manualConfigSchema, type ManualConfig } from './config.js';

const NAME = 'manual';

/** The manual adapter. */
export class ManualProvider implements DnsProvider {
  readonly name = NAME;
  readonly #config: ManualConfig;
  readonly #clock: Clock;
  readonly #logger: ProviderLogger;
  readonly #output: Writable;

  constructor(config: ManualConfig, deps: ProviderDeps = {}) {
    this.#config = config;
    this.#clock = deps.clock ?? systemClock;
    this.#logger = deps.logger ?? silentLogger;
    this.#output = deps.output ?? (config.output === 'stdout' ? (deps.stdout ?? process.stdout) : (deps.stderr ?? process.stderr));
  }

  async readTxt(fqdn: string): Promise<string[]> {
    return (await this.inspect(fqdn)).txt;
  }

  /**
   * What the first answering server holds. TTL is null: the system resolver
   * does not report TXT TTLs. A referral from that server (the name itself
   * delegated to other nameservers, often a hosted DMARC service) is reported
   * as `delegation`, as the API-backed adapters report an NS set there.
   */
  async inspect(fqdn: string): Promise<RecordSetView> {
    const answers = await queryTxtEach(fqdn, await this.#servers(fqdn));
    const first = answers.find((a) => a.answer !== null);
    if (!first?.answer) {
      throw new ProviderError(NAME, 'api', `no server answered for ${canonicalName(fqdn)}: ${answers.map((a) => `${a.server} ${a.error}`).join('; ')}`);
    }
    let delegation: string[] | null;
    try {
      // Servers found by walking up from the name are the delegated zone's own when the name is a zone cut: ask NS there first.
      const own = this.#config.nameservers === undefined ? await nsRecordsAt(fqdn, this.#config.resolvers ?? []) : [];
      delegation = own.length > 0 ? own : await delegationAt(fqdn, first.server);
    } catch (error) {
      throw new ProviderError(NAME, 'api', `cannot tell whether ${canonicalName(fqdn)} is delegated: ${errorMessage(error)}`);
    }
    return { txt: delegation ? [] : first.answer.txt, ttl: null, cname: first.answer.cname, delegation };
  }

  async writeTxt(fqdn: string, records: string[], opts: { ttl: number }): Promise<void> {
    const servers = await this.#servers(fqdn);
    this.#output.write(this.instructions(fqdn, records, opts.ttl, servers));
    if (this.#config.timeout_seconds === 0) return;
    const deadline = this.#clock.now() + this.#config.timeout_seconds * 1000;
    for (;;) {
      const answers = await queryTxtEach(fqdn, servers);
      if (answers.every((a) => a.answer !== null && a.answer.cname === null && sameRecords(a.answer.txt, records))) {
        this.#output.write(`Seen on ${servers.length === 1 ? 'the server' : `all ${servers.length} servers`}: ${canonicalName(fqdn)} is published.\n`);
        this.#logger.info({ provider: NAME, fqdn: canonicalName(fqdn), servers }, 'manual change seen in DNS');
        return;
      }
      if (this.#clock.now() >= deadline) {
        throw new ProviderError(NAME, 'timeout', `${canonicalName(fqdn)} did not show the record set within ${this.#config.timeout_seconds} s; last seen: ${describeAnswers(answers)}`);
      }
      await this.#clock.sleep(this.#config.poll_seconds * 1000);
    }
  }

  /** The text a person reads: what to publish at `fqdn`, as zone-file lines. */
  instructions(fqdn: string, records: readonly string[], ttl: number, servers: readonly string[]): string {
    const owner = absoluteName(fqdn);
    const lines =
      records.length === 0
        ? [`Delete every TXT record at ${owner}`]
        : [
            `Replace every TXT record at ${owner} with exactly ${records.length === 1 ? 'this record' : `these ${records.length} records`} (TTL ${ttl}):`,
            '',
            ...records.map((r) => `${owner} ${ttl} IN TXT ${toPresentation(r)}`),
            '',
          ];
    return [
      `dmarc-rollout: manual DNS change for ${canonicalName(fqdn)}`,
      ...lines,
      this.#config.timeout_seconds === 0
        ? `It counts once ${servers.join(', ')} serve it; later runs check.`
        : `Waiting up to ${this.#config.timeout_seconds} s for ${servers.join(', ')} to serve it (checking every ${this.#config.poll_seconds} s).`,
      '',
    ].join('\n');
  }

  async #servers(fqdn: string): Promise<string[]> {
    if (this.#config.nameservers !== undefined) return this.#config.nameservers;
    try {
      return await authoritativeServers(fqdn, this.#config.resolvers ?? [], { port: this.#config.authoritative_port === 53 ? undefined : this.#config.authoritative_port });
    } catch (error) {
      throw new ProviderError(NAME, 'api', `cannot find the authoritative servers of ${canonicalName(fqdn)}: ${errorMessage(error)}`);
    }
  }
}

function describeAnswers(answers: readonly ServerAnswer[]): string {
  return answers
    .map((a) => {
      if (a.answer === null) return `${a.server}: ${a.error}`;
      if (a.answer.cname !== null) return `${a.server}: CNAME ${a.answer.cname}`;
      return `${a.server}: ${a.answer.txt.length === 0 ? 'no TXT' : a.answer.txt.map((t) => JSON.stringify(t)).join(', ')}`;
    })
    .join('; ');
}
