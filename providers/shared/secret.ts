/**
 * Secrets come from the environment or a file the operator points at, never
 * from the database or the config file itself. Errors name where we looked
 * (the variable, the path) and never what we found.
 */
import { readFileSync } from 'node:fs';
import { ProviderError } from './errors.js';

/** The process environment, or a stand-in for tests. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** Where one secret lives: exactly one of the two, as the config said. */
export interface SecretSource {
  /** Name of the environment variable holding it. */
  env?: string | undefined;
  /** Path of a file holding it (trailing newline ignored). */
  file?: string | undefined;
}

/**
 * Reads a secret. `label` says what it is ("API key"), `keys` the config
 * keys the source came from, for the message.
 * @throws ProviderError `secret` when it is not set, unreadable or empty.
 */
export function readSecret(
  provider: string,
  label: string,
  source: SecretSource,
  keys: { env: string; file: string },
  env: Environment,
): string {
  if (source.env !== undefined) {
    const value = env[source.env];
    if (value === undefined || value.trim() === '') {
      throw new ProviderError(
        provider,
        'secret',
        `${label} missing: environment variable ${source.env} (${keys.env}) is not set or empty`,
      );
    }
    return value.trim();
  }
  if (source.file !== undefined) {
    let value: string;
    try {
      value = readFileSync(source.file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ProviderError(provider, 'secret', `${label} missing: cannot read file ${source.file} (${keys.file}): ${code}`);
    }
    if (value.trim() === '') {
      throw new ProviderError(provider, 'secret', `${label} missing: file ${source.file} (${keys.file}) is empty`);
    }
    return value.trim();
  }
  throw new ProviderError(provider, 'config', `${label}: set ${keys.env} or ${keys.file}`);
}
