/**
 * An HTTP proxy on loopback in front of PowerDNS's API that lets a test hold
 * a DNS write at the moment it has reached the zone: the daemon (or CLI run)
 * that sent it waits for the answer while the test kills it, or checks what
 * others see meanwhile.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';

/**
 * Between the daemons and PowerDNS: passes every API call through, counts
 * the TXT writes that reached the zone, and can keep back the answer to the
 * next write until told to let it go.
 */
export class HoldingProxy {
  readonly writes: Array<{ name: string; content: string }> = [];
  #server: Server | null = null;
  #hold: { armed: boolean; seen: (name: string) => void; release: Promise<void> } | null = null;
  url = '';
  constructor(private readonly upstream: string) {}

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      void this.#pass(req).then(
        async ({ status, body, type, written }) => {
          const hold = this.#hold;
          if (written.length > 0 && hold?.armed) {
            hold.armed = false;
            hold.seen(written[0]!);
            await hold.release;
          }
          res.writeHead(status, type ? { 'content-type': type } : {});
          res.end(body);
        },
        (error: unknown) => {
          res.writeHead(502);
          res.end(String(error));
        },
      );
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
  }

  /** The next write is held once it has reached the zone; resolves with its name; `release` lets its answer go. */
  holdNextWrite(): { held: Promise<string>; release: () => void } {
    let seen!: (name: string) => void;
    let release!: () => void;
    const held = new Promise<string>((resolve) => (seen = resolve));
    this.#hold = { armed: true, seen, release: new Promise<void>((resolve) => (release = resolve)) };
    return { held, release };
  }

  async #pass(req: IncomingMessage): Promise<{ status: number; body: string; type: string | null; written: string[] }> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers: Record<string, string> = {};
    for (const name of ['x-api-key', 'content-type', 'accept']) if (typeof req.headers[name] === 'string') headers[name] = req.headers[name];
    const res = await fetch(`${this.upstream}${req.url}`, { method: req.method ?? 'GET', headers, ...(body ? { body } : {}) });
    const text = await res.text();
    const written: string[] = [];
    if (req.method === 'PATCH' && res.ok) {
      const rrsets = (JSON.parse(body) as { rrsets: Array<{ name: string; type: string; records?: Array<{ content: string }> }> }).rrsets;
      for (const r of rrsets.filter((x) => x.type === 'TXT')) {
        this.writes.push({ name: r.name.replace(/\.$/, ''), content: (r.records ?? []).map((x) => x.content).join(' ') });
        written.push(r.name.replace(/\.$/, ''));
      }
    }
    return { status: res.status, body: text, type: res.headers.get('content-type'), written };
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
