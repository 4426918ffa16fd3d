/**
 * Byte-stream plumbing for the unpackers: a pull reader with push-back,
 * peeking, bounded collection, and gzip/zlib inflation that finds where each
 * compressed stream ends (so concatenated gzip members, nested layers and
 * trailing bytes after the stream are all handled, and output never piles up
 * beyond one small input piece's worth).
 */
import { createReadStream } from 'node:fs';
import zlib from 'node:zlib';
import { errorMessage } from '../errors.js';
import { ReportError } from './errors.js';
import { formatBytes } from './limits.js';
import type { ReporterBudget } from './budget.js';
import type { ProvenancePolicy } from './provenance.js';

/**
 * Where raw input comes from: a file (streamed, random access for zip) or
 * bytes in memory; with the provenance check its source asks for (none: the
 * input is believed, as for a file a person gives to `ingest`).
 */
export type RawInput = ({ readonly path: string } | { readonly bytes: Buffer }) & {
  readonly provenance?: ProvenancePolicy;
  /** Records per reporter and hour, shared by every input of a daemon. */
  readonly budget?: ReporterBudget;
};

export function isFileInput(input: RawInput): input is { readonly path: string } {
  return 'path' in input;
}

/** Streams a raw input as chunks of at most 64 KiB. */
export async function* readInput(input: RawInput): AsyncGenerator<Buffer> {
  if (isFileInput(input)) {
    for await (const chunk of createReadStream(input.path, { highWaterMark: 64 * 1024 })) yield chunk as Buffer;
  } else {
    for (let i = 0; i < input.bytes.length; i += 64 * 1024) yield input.bytes.subarray(i, i + 64 * 1024);
  }
}

/** Pull reader over an async byte stream, with push-back of unconsumed bytes. */
export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private readonly pushed: Buffer[] = [];
  private done = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** The next chunk, or null at end of input. */
  async next(): Promise<Buffer | null> {
    const p = this.pushed.pop();
    if (p) return p;
    if (this.done) return null;
    for (;;) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return null;
      }
      if (r.value.length > 0) return r.value;
    }
  }

  unshift(chunk: Buffer): void {
    if (chunk.length > 0) this.pushed.push(chunk);
  }

  /** Exactly `n` bytes, or fewer if the input ends first. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const c = await this.next();
      if (!c) break;
      const take = Math.min(c.length, n - have);
      parts.push(c.subarray(0, take));
      if (take < c.length) this.unshift(c.subarray(take));
      have += take;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Bytes up to and including a zero byte (at most `max`), or null if none in time. */
  async readZeroTerminated(max: number): Promise<Buffer | null> {
    const parts: Buffer[] = [];
    let have = 0;
    for (;;) {
      const c = await this.next();
      if (!c) return null;
      const z = c.indexOf(0);
      if (z >= 0) {
        parts.push(c.subarray(0, z + 1));
        this.unshift(c.subarray(z + 1));
        return Buffer.concat(parts);
      }
      parts.push(c);
      have += c.length;
      if (have > max) return null;
    }
  }

  /** Everything left, as a stream. */
  async *rest(): AsyncGenerator<Buffer> {
    for (;;) {
      const c = await this.next();
      if (!c) return;
      yield c;
    }
  }

  /** Drops the rest of the input, counting it (bounded by `max`: stops counting past it). */
  async skipRest(max: number): Promise<number> {
    let n = 0;
    for (;;) {
      const c = await this.next();
      if (!c) return n;
      n += c.length;
      if (n > max) return n;
    }
  }

  /** Closes the underlying source early. */
  async close(): Promise<void> {
    this.done = true;
    await this.it.return?.();
  }
}

/** The first `n` bytes of a stream, and the whole stream (those bytes included). */
export async function peek(source: AsyncIterable<Buffer>, n: number): Promise<{ head: Buffer; stream: AsyncGenerator<Buffer> }> {
  const reader = new ByteReader(source);
  const head = await reader.read(n);
  reader.unshift(head);
  return { head, stream: reader.rest() };
}

/** Collects a stream into one buffer, refusing it past `max` bytes. */
export async function collect(source: AsyncIterable<Buffer>, max: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of source) {
    n += c.length;
    if (n > max) throw new ReportError('limit', `${what} is larger than ${formatBytes(max)} (limit)`, what);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/** Passes a stream through, refusing it once more than `max` bytes went by. */
export async function* capBytes(source: AsyncIterable<Buffer>, max: number, what: string): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const c of source) {
    n += c.length;
    if (n > max) throw new ReportError('limit', `${what} is larger than ${formatBytes(max)} (limit); refused`, null);
    yield c;
  }
}

/** Input pieces fed to the inflater are this small, so one piece of a bomb expands to a few MB at most. */
const INFLATE_PIECE = 8 * 1024;

/**
 * Writes one piece and waits until zlib has processed it. zlib does not call
 * the write callback when the data is corrupt (it emits 'error' and closes),
 * so those settle the wait too: never a promise left hanging.
 */
function write(z: zlib.InflateRaw | zlib.Inflate, piece: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => done(e);
    const onClose = () => done(null);
    const done = (e: Error | null) => {
      z.off('error', onError);
      z.off('close', onClose);
      if (e) reject(e);
      else resolve();
    };
    z.once('error', onError);
    z.once('close', onClose);
    z.write(piece, (err) => done(err ?? null));
  });
}

/**
 * Inflates one deflate stream from `reader` (raw deflate for gzip members,
 * RFC 1950 zlib when `zlibWrapped`), yielding output as it comes, and leaves
 * the bytes after the stream's end in the reader. `onEnd` gets the byte count.
 */
async function* inflateOne(
  reader: ByteReader,
  zlibWrapped: boolean,
  label: string,
  stats: { out: number; crc: number },
): AsyncGenerator<Buffer> {
  const z = zlibWrapped ? zlib.createInflate() : zlib.createInflateRaw();
  const out: Buffer[] = [];
  let failure: Error | null = null;
  z.on('data', (d: Buffer) => out.push(d));
  z.on('error', (e: Error) => {
    failure ??= e;
  });
  let fed = 0;
  try {
    for (;;) {
      const chunk = await reader.next();
      if (!chunk) {
        // Input ended: finish the inflater; zlib says whether the stream was complete.
        await new Promise<void>((resolve) => {
          z.once('end', resolve);
          z.once('close', resolve);
          z.once('error', (e: Error) => {
            failure ??= e;
            resolve();
          });
          z.end();
        });
        while (out.length > 0) {
          const d = out.shift()!;
          stats.out += d.length;
          if (!zlibWrapped) stats.crc = zlib.crc32(d, stats.crc);
          yield d;
        }
        if (failure) {
          const msg = (failure as Error).message;
          throw new ReportError(
            'container',
            /unexpected end/i.test(msg) ? `truncated ${label} stream: the input ends inside the compressed data` : `corrupt ${label} data: ${msg}`,
            label,
          );
        }
        return;
      }
      for (let i = 0; i < chunk.length; i += INFLATE_PIECE) {
        const piece = chunk.subarray(i, i + INFLATE_PIECE);
        fed += piece.length;
        try {
          await write(z, piece);
        } catch (e) {
          failure ??= e as Error;
        }
        if (failure) {
          throw new ReportError('container', `corrupt ${label} data: ${errorMessage(failure)}`, label, { cause: failure });
        }
        while (out.length > 0) {
          const d = out.shift()!;
          stats.out += d.length;
          if (!zlibWrapped) stats.crc = zlib.crc32(d, stats.crc);
          yield d;
        }
        const readableState = (z as unknown as { _readableState: { ended: boolean } })._readableState;
        if (readableState.ended || z.bytesWritten < fed) {
          const unused = fed - z.bytesWritten;
          reader.unshift(chunk.subarray(i + piece.length));
          reader.unshift(piece.subarray(piece.length - unused));
          return;
        }
      }
    }
  } finally {
    z.destroy();
  }
}

export interface InflateNotes {
  /** Bytes after the last compressed stream that were ignored. */
  trailingBytes: number;
  /** gzip members after the first (concatenated gzip). */
  extraMembers: number;
}

/**
 * gzip (RFC 1952): every member in turn (concatenated members are one
 * stream), each one's CRC-32 and length checked; bytes after the last member
 * that do not start another member are counted in `notes.trailingBytes` and
 * ignored (Mimecast appends a CRLF).
 */
export async function* gunzip(source: AsyncIterable<Buffer>, notes: InflateNotes): AsyncGenerator<Buffer> {
  const reader = new ByteReader(source);
  let member = 0;
  try {
    for (;;) {
      const fixed = await reader.read(10);
      if (member > 0) {
        if (fixed.length === 0) return;
        if (fixed.length < 2 || fixed[0] !== 0x1f || fixed[1] !== 0x8b) {
          notes.trailingBytes = fixed.length + (await reader.skipRest(1024 * 1024 * 1024));
          return;
        }
      }
      if (fixed.length < 10) throw new ReportError('container', 'truncated gzip header', 'gzip');
      if (fixed[2] !== 8) throw new ReportError('container', `gzip compression method ${fixed[2]} is not deflate`, 'gzip');
      const flags = fixed[3]!;
      if (flags & 0x04) {
        const len = await reader.read(2);
        if (len.length < 2) throw new ReportError('container', 'truncated gzip header', 'gzip');
        const extra = await reader.read(len.readUInt16LE(0));
        if (extra.length < len.readUInt16LE(0)) throw new ReportError('container', 'truncated gzip header', 'gzip');
      }
      if (flags & 0x08 && !(await reader.readZeroTerminated(64 * 1024))) {
        throw new ReportError('container', 'gzip header file name is not terminated', 'gzip');
      }
      if (flags & 0x10 && !(await reader.readZeroTerminated(64 * 1024))) {
        throw new ReportError('container', 'gzip header comment is not terminated', 'gzip');
      }
      if (flags & 0x02 && (await reader.read(2)).length < 2) throw new ReportError('container', 'truncated gzip header', 'gzip');
      const stats = { out: 0, crc: 0 };
      yield* inflateOne(reader, false, 'gzip', stats);
      const trailer = await reader.read(8);
      if (trailer.length < 8) throw new ReportError('container', 'truncated gzip stream: the CRC trailer is missing', 'gzip');
      if (trailer.readUInt32LE(0) !== stats.crc >>> 0) {
        throw new ReportError('container', 'corrupt gzip data: CRC-32 does not match the content', 'gzip');
      }
      if (trailer.readUInt32LE(4) !== stats.out % 2 ** 32) {
        throw new ReportError('container', 'corrupt gzip data: length in the trailer does not match the content', 'gzip');
      }
      if (member > 0) notes.extraMembers++;
      member++;
    }
  } finally {
    await reader.close();
  }
}

/** Raw zlib (RFC 1950): one stream, Adler-32 checked by zlib; trailing bytes counted and ignored. */
export async function* inflateZlib(source: AsyncIterable<Buffer>, notes: InflateNotes): AsyncGenerator<Buffer> {
  const reader = new ByteReader(source);
  try {
    yield* inflateOne(reader, true, 'zlib', { out: 0, crc: 0 });
    notes.trailingBytes = await reader.skipRest(1024 * 1024 * 1024);
  } finally {
    await reader.close();
  }
}
