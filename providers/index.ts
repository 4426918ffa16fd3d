/**
 * The provider registry: one place that knows every adapter, its config
 * schema and how to build it. Config is validated here (zod) before any
 * adapter sees it, so a typo in a provider block fails at load with the key
 * named, not at the first write.
 */
import { z } from 'zod';
import { CloudflareProvider, cloudflareConfigSchema } from './cloudflare/index.js';
import { ManualProvider, manualConfigSchema } from './manual/index.js';
import { PowerdnsProvider, powerdnsConfigSchema } from './powerdns/index.js';
import { Route53Provider, route53ConfigSchema } from './route53/index.js';
import type { ProviderDeps } from './shared/deps.js';
import { ProviderError } from './shared/errors.js';
import type { DnsProvider } from './types.js';

export type { DnsProvider, RecordSetView } from './types.js';
export type { ProviderDeps, ProviderLogger } from './shared/deps.js';
export type { Clock } from './shared/clock.js';
export { ProviderError, type ProviderErrorKind } from './shared/errors.js';
export { CloudflareProvider, cloudflareConfigSchema, type CloudflareConfig } from './cloudflare/index.js';
export { ManualProvider, manualConfigSchema, type ManualConfig } from './manual/index.js';
export { PowerdnsProvider, powerdnsConfigSchema, type PowerdnsConfig } from './powerdns/index.js';
export { Route53Provider, route53ConfigSchema, type Route53Config } from './route53/index.js';

/** Every provider's settings, told apart by `type`. */
export const providerConfigSchema = z.discriminatedUnion('type', [
  powerdnsConfigSchema,
  route53ConfigSchema,
  cloudflareConfigSchema,
  manualConfigSchema,
]);

/** Validated settings of one provider. */
export type ProviderConfig = z.infer<typeof providerConfigSchema>;

/** The provider type names (`type:` in a provider block). */
export type ProviderType = ProviderConfig['type'];

/** Each provider type's schema and factory. */
export const providers: {
  readonly [T in ProviderType]: {
    readonly schema: z.ZodType<Extract<ProviderConfig, { type: T }>>;
    create(config: Extract<ProviderConfig, { type: T }>, deps?: ProviderDeps): DnsProvider;
  };
} = {
  powerdns: { schema: powerdnsConfigSchema, create: (config, deps) => new PowerdnsProvider(config, deps) },
  route53: { schema: route53ConfigSchema, create: (config, deps) => new Route53Provider(config, deps) },
  cloudflare: { schema: cloudflareConfigSchema, create: (config, deps) => new CloudflareProvider(config, deps) },
  manual: { schema: manualConfigSchema, create: (config, deps) => new ManualProvider(config, deps) },
};

/** The registered provider type names, in a stable order. */
export const PROVIDER_TYPES = Object.keys(providers) as ProviderType[];

/**
 * Validates a provider block.
 * @throws ProviderError `config` naming each offending key.
 */
export function parseProviderConfig(raw: unknown): ProviderConfig {
  const type = typeof raw === 'object' && raw !== null ? (raw as { type?: unknown }).type : undefined;
  if (typeof type !== 'string' || !(PROVIDER_TYPES as string[]).includes(type)) {
    throw new ProviderError(
      typeof type === 'string' ? type : 'provider',
      'config',
      `unknown provider type ${JSON.stringify(type ?? null)}; known: ${PROVIDER_TYPES.join(', ')}`,
    );
  }
  const result = providerConfigSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(config)'}: ${i.message}`);
    throw new ProviderError(type, 'config', `invalid settings: ${issues.join('; ')}`);
  }
  return result.data;
}

/**
 * Builds the adapter for a provider block (validated here; raw YAML/JSON
 * data is fine). Secrets are read now, so a missing one fails at start-up.
 * @throws ProviderError `config` or `secret`.
 */
export function createProvider(raw: unknown, deps: ProviderDeps = {}): DnsProvider {
  const config = parseProviderConfig(raw);
  const entry = providers[config.type] as {
    create(config: ProviderConfig, deps?: ProviderDeps): DnsProvider;
  };
  return entry.create(config, deps);
}
