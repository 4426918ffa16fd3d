/**
 * An HTTP proxy on loopback in front of a real API (PowerDNS's), that can
 * answer a request itself instead of passing it on: 429 with Retry-After as a
 * rate-limiting gateway does, 5xx as a server in trouble, 4xx as a refusal.
 * Every request is recorded, so a test sees what the adapter sent and how
 * often it retried.
 */
import { createServer, type Server } from 'node:http';

/** A request as the proxy saw it, and the status it answered. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  status: number;
  /** The proxy answered it from a fault, not the upstream. */
  faulted: boolean;
}

/** An answer given instead of the upstream's, to the next `times` requests that `when` picks. */
export interface ProxyFault {
  times: number;
  status: number;
  headers?: Record<string, string>;
  body?: string;
  when?: (request: { method: string; url: string }) => boolean;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: the upstream's base URL, through the proxy. */
  url: string;
  requests: ProxiedRequest[];
  fail(fault: ProxyFault): void;
  /** Forgets pending faults and recorded requests. */
  reset(): void;
  stop(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const faults: ProxyFault[] = [];
  const requests: ProxiedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const fault = faults.find((f) => f.times > 0 && (f.when === undefined || f.when({ method, url })));
      if (fault) {
        fault.times -= 1;
        requests.push({ method, url, status: fault.status, faulted: true });
        res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        res.end(fault.body ?? JSON.stringify({ error: `injected HTTP ${fault.status}` }));
        return;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
      fetch(`${upstream}${url}`, { method, headers, ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}) })
        .then(async (answer) => {
          const body = Buffer.from(await answer.arrayBuffer());
          requests.push({ method, url, status: answer.status, faulted: false });
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
          res.end(body);
        })
        .catch(() => {
          requests.push({ method, url, status: 502, faulted: false });
          res.writeHead(502);
          res.end();
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('fault proxy: no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    fail: (fault) => void faults.push({ ...fault }),
    reset: () => {
      faults.length = 0;
      requests.length = 0;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
