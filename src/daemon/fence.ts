/**
 * A DNS provider whose writes are fenced by a domain's lease: the lease is
 * taken again (renewed, or retaken if it ran out and nobody took it) just
 * before each write, and the write is refused when another instance holds
 * it. A daemon that stalled past its lease time while another took the
 * domain over then writes nothing; the holder applies the change. Reads pass
 * through untouched. Providers keep private fields, so methods are called on
 * the provider itself, never on the wrapper.
 */
import type { Kysely } from 'kysely';
import type { DnsProvider } from '../dns/provider.js';
import { AppError } from '../errors.js';
import { claimLease } from '../store/leases.js';
import type { Database } from '../store/schema.js';

export interface Fence {
  db: Kysely<Database>;
  /** The instance that should hold the lease. */
  holder: string;
  leaseMs: number;
  now?: () => Date;
}

export class LeaseFence {
  readonly #unfenced = new WeakMap<DnsProvider, DnsProvider>();
  constructor(private readonly fence: Fence) {}

  /** `provider`, with writes to `domain`'s record only while `domain:<domain>` is this holder's. */
  wrap(provider: DnsProvider, domain: string): DnsProvider {
    const { db, holder, leaseMs } = this.fence;
    const now = this.fence.now ?? (() => new Date());
    const proxy = new Proxy(provider, {
      get(target, prop) {
        if (prop === 'writeTxt') {
          return async (...args: Parameters<DnsProvider['writeTxt']>) => {
            if (!(await claimLease(db, `domain:${domain}`, holder, now(), leaseMs))) {
              throw new AppError('conflict', `this instance (${holder}) lost the lease on ${domain} before writing; the instance holding it now applies the change`);
            }
            return target.writeTxt(...args);
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    this.#unfenced.set(proxy, provider);
    return proxy;
  }

  /** The provider a wrapper was made from (what the provider set knows its settings by); itself otherwise. */
  unwrap(provider: DnsProvider): DnsProvider {
    return this.#unfenced.get(provider) ?? provider;
  }
}
