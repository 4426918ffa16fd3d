/**
 * Enrolling domains into a plan. Enrolment reads before it writes: each
 * domain's live `_dmarc` set is read through the provider that hosts its
 * zone, and the domain starts at the plan stage matching what it publishes,
 * never a weaker one (start-stage.ts); a record owned elsewhere (CNAME, NS
 * delegation) is refused naming the service, and a record that sends no
 * aggregate report anywhere is refused unless the daemon's own report
 * address is given to add. A batch (the command line, or a file of a few
 * thousand lines) is checked line by line and written in one transaction:
 * the valid names go in together, and every refused line comes back with its
 * reason so the operator can fix the file and run it again.
 */
import type { DnsProvider, RecordSetView } from '../dns/provider.js';
import { errorMessage } from '../errors.js';
import type { Plan } from '../plans/index.js';
import { dmarcName, hasUsableUri, parseRecord, recordForPlanStage, tagValue } from '../record/index.js';
import { appendAudit } from '../store/audit.js';
import { appendStageChange, findDomains, insertDomain } from '../store/domains.js';
import type { Store } from '../store/open.js';
import { ActionError } from './actions.js';
import { normalizeDomainName } from '../names.js';
import { chooseStartStage, type StartOverride } from './start-stage.js';

/** One line of input: the text and where it came from, to name it when refused. */
export interface EnrollInput {
  text: string;
  /** `argv`, or the file name. */
  origin: string;
  /** 1-based line number within a file. */
  line?: number;
}

/** The configured DNS providers by name (a ProviderSet fits). */
export interface ProviderLookup {
  readonly names: readonly string[];
  /** @throws Error when the named provider's settings are broken. */
  get(name: string): DnsProvider;
}

export interface EnrollRequest {
  inputs: EnrollInput[];
  plan: Plan;
  /** The provider that hosts the zones, by its configured name. */
  provider: string | null;
  providers: ProviderLookup;
  actor: string;
  now: Date;
  /** A person's choice of starting stage instead of the one the live record matches. */
  startAt?: StartOverride;
  /** The daemon's own report address (`dmarc@reports.example` or `mailto:…`), added to a record that has no usable rua. */
  reportAddress?: string | null;
}

export interface EnrollRefusal {
  input: EnrollInput;
  reason: string;
}

/** Where an enrolled domain starts, and why. */
export interface EnrollStart {
  domain: string;
  stage: string;
  found: string | null;
  why: string;
  /** The record the first tick will publish (the found one edited for the stage), shown before anything is written. */
  record: string;
  /** The report URI added to the record, when enrolment adds one. */
  report_uri: string | null;
}

export interface EnrollResult {
  enrolled: string[];
  /** Each enrolled domain's starting stage and why, in the order of `enrolled`. */
  started: EnrollStart[];
  /** Already enrolled before this run with the same plan and provider (left untouched). */
  alreadyEnrolled: Array<{ domain: string; plan: string }>;
  refused: EnrollRefusal[];
}

/** Domains read at once: a batch of thousands must not burst a provider's rate limit. */
const READ_CONCURRENCY = 4;

/** Reads an enrolment file: one domain a line; blank lines and `#` comments are skipped. */
export function enrollInputsFromText(text: string, origin: string): EnrollInput[] {
  const inputs: EnrollInput[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const withoutComment = raw.replace(/#.*$/, '').trim();
    if (withoutComment !== '') inputs.push({ text: withoutComment, origin, line: index + 1 });
  });
  return inputs;
}

/** `mailto:` + address, or why the address cannot be a report URI. */
export function reportUriOf(address: string): string {
  const uri = address.trim().toLowerCase().startsWith('mailto:') ? address.trim() : `mailto:${address.trim()}`;
  if (!hasUsableUri(uri)) throw new ActionError(`report address "${address}" is not a usable mailto: address`, 'invalid', 'report_address');
  return uri;
}

/** The provider a batch is enrolled with. @throws ActionError `invalid` (field `provider`) with the fix. */
export function providerForEnrolment(name: string | null, providers: ProviderLookup): DnsProvider {
  const known = providers.names.length > 0 ? providers.names.join(', ') : 'none configured';
  if (name === null || name.trim() === '') {
    throw new ActionError(`a domain needs the DNS provider that hosts its zone: give --provider <name> (configured: ${known})`, 'invalid', 'provider');
  }
  if (!providers.names.includes(name)) {
    throw new ActionError(`there is no provider named "${name}" (configured: ${known}); add it to the provider settings (--providers, --config or DMARC_ROLLOUT_PROVIDERS) or pick one of those`, 'invalid', 'provider');
  }
  try {
    return providers.get(name);
  } catch (error) {
    throw new ActionError(`provider "${name}" cannot be used: ${errorMessage(error)}`, 'invalid', 'provider', { cause: error });
  }
}

/** Validates every input, reads each new domain's live record, and enrolls those that can start, in one transaction. */
export async function enrollDomains(store: Store, request: EnrollRequest): Promise<EnrollResult> {
  const provider = providerForEnrolment(request.provider, request.providers);
  const reportUri = request.reportAddress ? reportUriOf(request.reportAddress) : null;
  const refused: EnrollRefusal[] = [];
  const firstSeen = new Map<string, EnrollInput>();
  for (const input of request.inputs) {
    const name = normalizeDomainName(input.text);
    if (!name.ok) {
      refused.push({ input, reason: name.reason });
      continue;
    }
    const earlier = firstSeen.get(name.domain);
    if (earlier) {
      refused.push({ input, reason: `${name.domain} is listed twice (first at ${describeInput(earlier)})` });
      continue;
    }
    firstSeen.set(name.domain, input);
  }

  const existing = await findDomains(store.db, [...firstSeen.keys()]);
  const alreadyEnrolled: EnrollResult['alreadyEnrolled'] = [];
  const fresh: string[] = [];
  for (const [domain, input] of firstSeen) {
    const row = existing.get(domain);
    if (!row) {
      fresh.push(domain);
    } else if (row.plan === request.plan.name && row.provider === request.provider) {
      alreadyEnrolled.push({ domain, plan: row.plan });
    } else {
      refused.push({
        input,
        reason: `${domain} is already enrolled (plan ${row.plan}, provider ${row.provider ?? 'none'}); change it with set-plan or set-provider, or unenroll it first`,
      });
    }
  }

  const views = await readAll(fresh, provider);
  const starts: Array<EnrollStart & { index: number; floorIndex: number; chosenByPerson: boolean }> = [];
  for (const domain of fresh) {
    const input = firstSeen.get(domain)!;
    const view = views.get(domain)!;
    if ('error' in view) {
      refused.push({ input, reason: `reading ${dmarcName(domain)} through provider ${request.provider} failed: ${view.error}` });
      continue;
    }
    const choice = chooseStartStage(request.plan, dmarcName(domain), view.view, request.startAt);
    if (!choice.ok) {
      refused.push({ input, reason: choice.reason });
      continue;
    }
    const rua = choice.found === null ? undefined : tagValue(parseRecord(choice.found).tags, 'rua');
    const reports = rua !== undefined && hasUsableUri(rua);
    if (!reports && reportUri === null) {
      refused.push({
        input,
        reason: `${choice.found === null ? `no DMARC record at ${dmarcName(domain)}` : `the record at ${dmarcName(domain)} has no usable rua`}, so no aggregate report would come back and no stage could ever be judged; add rua=mailto:<address> to the record, or enroll with --config <daemon config> whose report_addresses name this daemon's own mailbox (or --report-address)`,
      });
      continue;
    }
    const addedUri = reports ? null : reportUri;
    const edit = recordForPlanStage(request.plan, choice.index, choice.found, addedUri);
    if (!edit.ok) {
      refused.push({ input, reason: `the record for ${choice.label} would be invalid: ${edit.problems.map((p) => `${p.tag ?? 'record'}: ${p.reason}`).join('; ')}` });
      continue;
    }
    starts.push({
      domain,
      stage: choice.label,
      found: choice.found,
      why: addedUri ? `${choice.why}; rua=${addedUri} is added so reports come back to this daemon` : choice.why,
      record: edit.record,
      report_uri: addedUri,
      index: choice.index,
      floorIndex: choice.floorIndex,
      chosenByPerson: choice.chosenByPerson,
    });
  }

  const at = request.now.toISOString();
  await store.db.transaction().execute(async (trx) => {
    for (const s of starts) {
      await insertDomain(trx, {
        domain: s.domain,
        plan: request.plan.name,
        provider: request.provider,
        stage_index: s.index,
        state: 'active',
        state_reason: null,
        stage_since: null,
        last_record: null,
        window_start: null,
        approved_stage_index: null,
        found_record: s.found,
        floor_index: s.floorIndex,
        report_uri: s.report_uri,
        enrolled_at: at,
        updated_at: at,
      });
      const reason = `enrolled into plan ${request.plan.name} at ${s.stage}: ${s.why}; the next tick writes and verifies it`;
      await appendStageChange(trx, { domain: s.domain, at, from_stage: null, to_stage: s.stage, action: 'enroll', actor: request.actor, reason, record: null });
      await appendAudit(trx, {
        at: request.now,
        actor: request.actor,
        domain: s.domain,
        action: 'enroll',
        reason,
        details: {
          plan: request.plan.name,
          plan_file: request.plan.file,
          provider: request.provider,
          start: s.stage,
          chosen_by_person: s.chosenByPerson,
          found_record: s.found,
          first_record: s.record,
          report_uri: s.report_uri,
        },
      });
    }
  });
  return { enrolled: starts.map((s) => s.domain), started: starts.map(({ index: _i, floorIndex: _f, chosenByPerson: _c, ...s }) => s), alreadyEnrolled, refused };
}

async function readAll(domains: string[], provider: DnsProvider): Promise<Map<string, { view: RecordSetView } | { error: string }>> {
  const out = new Map<string, { view: RecordSetView } | { error: string }>();
  let next = 0;
  const worker = async () => {
    while (next < domains.length) {
      const domain = domains[next++]!;
      try {
        out.set(domain, { view: await provider.inspect(dmarcName(domain)) });
      } catch (error) {
        out.set(domain, { error: errorMessage(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, domains.length) }, worker));
  return out;
}

/** `file:line` or `argument "x"`, for messages about one input. */
export function describeInput(input: EnrollInput): string {
  return input.line === undefined ? `argument "${input.text}"` : `${input.origin}:${input.line}`;
}
