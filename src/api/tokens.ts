/**
 * Bearer tokens: made here, shown once, kept only as SHA-256 hashes (in the
 * config or a token file). A token is 32 random bytes, so a plain hash is as
 * good as a slow one: there is nothing to guess.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { AppError, errorMessage } from '../errors.js';
import { apiTokenFileSchema, type ApiRole, type ApiTokenEntry } from './config.js';

/** Who a request is on behalf of. */
export interface Principal {
  /** The token's name, as the audit log shows it. */
  name: string;
  role: ApiRole;
}

const PREFIX = 'dmr_';

/** A new token; its hash goes in the config, the token to its holder. */
export function generateToken(): { token: string; sha256: string } {
  const token = PREFIX + randomBytes(32).toString('base64url');
  return { token, sha256: hashToken(token) };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Reads a token file: a YAML list of `{ name, role, sha256 }`. @throws AppError config naming the file, entry and field. */
export function readTokenFile(file: string): ApiTokenEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AppError('config', `${file}: cannot be read: ${errorMessage(error)}`, { cause: error });
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new AppError('config', `${file}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const parsed = apiTokenFileSchema.safeParse(doc.toJS() ?? []);
  if (!parsed.success) {
    throw new AppError('config', parsed.error.issues.map((i) => `${file}: ${i.path.length > 0 ? i.path.join('.') : '(file)'}: ${i.message}`).join('\n'));
  }
  return parsed.data;
}

/** The tokens a server accepts. Names must be unique: the audit log tells holders apart by name. */
export class TokenSet {
  private entries: Array<{ principal: Principal; hash: Buffer }> = [];

  constructor(entries: readonly ApiTokenEntry[]) {
    this.replace(entries);
  }

  /**
   * Swaps in a new list (the daemon re-reads its tokens on SIGHUP): a removed
   * token is refused from the next request on, and its sessions with it.
   * @throws AppError config when a name is used twice; the old list then stays.
   */
  replace(entries: readonly ApiTokenEntry[]): void {
    const seen = new Set<string>();
    for (const e of entries) {
      if (seen.has(e.name)) throw new AppError('config', `token name "${e.name}" is used twice; each holder needs a name of their own`);
      seen.add(e.name);
    }
    this.entries = entries.map((e) => ({ principal: { name: e.name, role: e.role }, hash: Buffer.from(e.sha256, 'hex') }));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The holder named `name` if their token still hashes to `sha256` (a session outlives no revoked token). */
  holder(name: string, sha256: string): Principal | undefined {
    const hash = Buffer.from(sha256, 'hex');
    const entry = this.entries.find((e) => e.principal.name === name);
    return entry && entry.hash.length === hash.length && timingSafeEqual(entry.hash, hash) ? entry.principal : undefined;
  }

  /** The holder of `token`, or undefined. Compares every entry in constant time. */
  lookup(token: string): Principal | undefined {
    const hash = Buffer.from(hashToken(token), 'hex');
    let found: Principal | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.hash, hash)) found = e.principal;
    return found;
  }
}

/** What a role may do: an operator may do everything a viewer may. */
export function roleAllows(role: ApiRole, needed: ApiRole): boolean {
  return needed === 'viewer' || role === 'operator';
}
