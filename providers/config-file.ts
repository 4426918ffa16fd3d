/**
 * The named providers an operator configured, from a YAML or JSON file:
 *
 *   route53-main: { type: route53, region: eu-west-1 }
 *   pdns:         { type: powerdns, api_url: http://127.0.0.1:8081, api_key_env: PDNS_API_KEY }
 *
 * A domain's `provider` (set at enrolment) names one of these. Adapters are
 * built on first use, so a broken block only stops the domains that use it.
 * An optional `verify` block in each says which name servers confirm a change
 * (`verify: { nameservers: [192.0.2.53], port: 53 }`); without it, the zone's
 * NS records are followed.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { createProvider } from './index.js';
import { AppError, errorMessage } from '../src/errors.js';
import type { ProviderDeps } from './shared/deps.js';
import type { DnsProvider } from './types.js';

/** Where a provider's changes are confirmed over DNS. */
export interface VerifySettings {
  nameservers?: string[];
  resolvers?: string[];
  port?: number;
}

export interface ProviderSet {
  /** The adapter for `name`. @throws AppError config naming the file and the provider when it is missing or broken. */
  get(name: string | null): DnsProvider;
  /** The `verify` settings of the provider that `get` returned. */
  verifySettings(provider: DnsProvider): VerifySettings;
  readonly names: string[];
}

export function loadProviderSet(file: string, deps: ProviderDeps = {}): ProviderSet {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'), { uniqueKeys: true });
  } catch (error) {
    throw new AppError('config', `${file}: cannot be read as YAML: ${errorMessage(error).split('\n')[0]}`, { cause: error });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new AppError('config', `${file}: expected a map of provider names to settings`);
  }
  return providerSetFrom(raw as Record<string, unknown>, file, deps);
}

/** The same from settings already read (the daemon's config file); `origin` names them in errors. */
export function providerSetFrom(blocks: Record<string, unknown>, origin: string, deps: ProviderDeps = {}): ProviderSet {
  const built = new Map<string, DnsProvider>();
  const verify = new WeakMap<DnsProvider, VerifySettings>();
  return {
    names: Object.keys(blocks),
    verifySettings: (provider) => verify.get(provider) ?? {},
    get(name) {
      if (name === null) throw new AppError('conflict', 'the domain has no provider; enroll it with --provider <name>');
      let provider = built.get(name);
      if (provider) return provider;
      if (!(name in blocks)) throw new AppError('config', `no provider named "${name}" in ${origin} (have: ${Object.keys(blocks).join(', ') || 'none'})`);
      const { verify: verifyBlock, ...settings } = (blocks[name] ?? {}) as { verify?: unknown };
      try {
        provider = createProvider(settings, deps);
        verify.set(provider, parseVerify(verifyBlock));
      } catch (error) {
        throw new AppError('config', `${origin}: provider "${name}": ${errorMessage(error)}`, { cause: error });
      }
      built.set(name, provider);
      return provider;
    },
  };
}

function parseVerify(raw: unknown): VerifySettings {
  if (raw === undefined) return {};
  const result = verifySchema.safeParse(raw);
  if (!result.success) {
    throw new AppError('config', `verify: ${result.error.issues.map((i) => `${i.path.join('.') || '(block)'}: ${i.message}`).join('; ')}`);
  }
  return result.data;
}

const verifySchema = z
  .object({
    nameservers: z.array(z.string().min(1)).optional(),
    resolvers: z.array(z.string().min(1)).optional(),
    port: z.number().int().min(1).max(65535).optional(),
  })
  .strict();
