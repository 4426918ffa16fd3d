/**
 * Containers to XML bytes: sniffs each layer by content and peels it (gzip,
 * zip, raw zlib, mail), recording the chain (`eml+zip`, `gzip+gzip`), with
 * caps on nesting, buffered bytes and decompressed bytes. The result is a
 * stream of XML bytes; nothing decompressed is held whole. A small file (the
 * daily report, a few KB) is read in one piece, a big one streamed.
 */
import yauzl from 'yauzl';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { errorMessage } from '../errors.js';
import { ReportError } from './errors.js';
import { formatBytes, type Limits } from './limits.js';
import { extractMailReport } from './mime.js';
import { authenticateMail, type MailAuthentication } from './provenance.js';
import { sniff, SNIFF_BYTES } from './sniff.js';
import { capBytes, collect, gunzip, inflateZlib, isFileInput, peek, readInput, type InflateNotes, type RawInput } from './streams.js';

export interface Unpacked {
  /** Container chain outside-in, e.g. ['eml', 'zip']; empty for plain XML. */
  chain: string[];
  /** File name of the mail attachment or zip member that held the report. */
  member: string | null;
  /** The XML bytes, capped at limits.maxXmlBytes. */
  xml: AsyncGenerator<Buffer>;
  /** What the outermost mail authenticated as, when the input was a mail and its source is not trusted; else null. */
  mail: MailAuthentication | null;
  /**
   * Things the unpacker tolerated (trailing bytes after a gzip stream ...).
   * Filled while `xml` is read: complete once it is exhausted.
   */
  notes: string[];
}

/** Zip members looked at before giving up on finding the report. */
const MAX_ZIP_ENTRIES = 1000;

export async function unpack(input: RawInput, limits: Limits): Promise<Unpacked> {
  const chain: string[] = [];
  const notes: string[] = [];
  let member: string | null = null;
  const inflateNotes: InflateNotes[] = [];
  let mail: MailAuthentication | null = null;

  async function layer(stream: AsyncIterable<Buffer>, depth: number, zipFile: string | null): Promise<AsyncGenerator<Buffer>> {
    const { head, stream: s } = await peek(stream, SNIFF_BYTES);
    const kind = sniff(head);
    if (kind !== 'xml' && kind !== 'empty' && kind !== 'unknown' && depth >= limits.maxNesting) {
      await s.return(undefined);
      throw new ReportError('limit', `containers nested more than ${limits.maxNesting} deep (${chain.join('+')}+${kind})`, chain.join('+'));
    }
    const where = chain.length ? `${chain.join('+')} content` : 'file';
    switch (kind) {
      case 'empty':
        await s.return(undefined);
        throw new ReportError('empty', head.length === 0 ? `empty ${where} (0 bytes)` : `empty ${where} (only whitespace)`);
      case 'unknown':
        await s.return(undefined);
        throw new ReportError(
          'unrecognised',
          // Never the bytes themselves: a reason is shown and stored, and the input may be anything (a key, a secret).
          `${where} is not XML, gzip, zip, zlib or a mail (it starts with ${/^[\x09\x0a\x0d\x20-\x7e]*$/.test(head.subarray(0, 64).toString('latin1')) ? 'other text' : 'other binary data'})`,
          chain.join('+') || null,
        );
      case 'xml':
        return s;
      case 'gzip':
      case 'zlib': {
        chain.push(kind);
        const n: InflateNotes = { trailingBytes: 0, extraMembers: 0 };
        inflateNotes.push(n);
        return layer(kind === 'gzip' ? gunzip(s, n) : inflateZlib(s, n), depth + 1, null);
      }
      case 'zip': {
        chain.push('zip');
        let zip: yauzl.ZipFile;
        if (zipFile) {
          await s.return(undefined);
          zip = await openZip((cb) => yauzl.open(zipFile, ZIP_OPTIONS, cb));
        } else {
          const bytes = await collect(s, limits.maxBufferedBytes, 'zip');
          zip = await openZip((cb) => yauzl.fromBuffer(bytes, ZIP_OPTIONS, cb));
        }
        const { stream: entryStream, name } = await openReportMember(zip, limits);
        member ??= name;
        return layer(entryStream, depth + 1, null);
      }
      case 'eml': {
        chain.push('eml');
        const raw = await collect(s, limits.maxBufferedBytes, 'mail');
        const found = await extractMailReport(raw);
        // Only the mail the report arrived in says who sent it; a mail packed inside a file is just content.
        if (depth === 0 && input.provenance && !input.provenance.trusted) mail = await authenticateMail(raw, input.provenance);
        member ??= found.filename;
        return layer(readInput({ bytes: found.bytes }), depth + 1, null);
      }
    }
  }

  let inputBytes: number;
  let inner: AsyncGenerator<Buffer>;
  if (isFileInput(input)) {
    const file = await readSmallFile(input.path);
    inputBytes = file.size;
    inner = file.bytes ? await layer(readInput({ bytes: file.bytes }), 0, null) : await layer(readInput(input), 0, input.path);
  } else {
    inputBytes = input.bytes.length;
    inner = await layer(readInput(input), 0, null);
  }
  const expansionCap = Math.max(limits.expansionFloorBytes, limits.maxExpansionRatio * inputBytes);
  async function* withNotes(): AsyncGenerator<Buffer> {
    let out = 0;
    for await (const chunk of capBytes(inner, limits.maxXmlBytes, 'decompressed report')) {
      out += chunk.length;
      if (out > expansionCap) {
        throw new ReportError(
          'limit',
          `the ${formatBytes(inputBytes)} input expands to more than ${formatBytes(expansionCap)} of XML (over ${limits.maxExpansionRatio} times its size); refused as a decompression bomb`,
          chain.join('+') || null,
        );
      }
      yield chunk;
    }
    for (const [i, n] of inflateNotes.entries()) {
      const label = chain.filter((c) => c === 'gzip' || c === 'zlib')[i] ?? 'gzip';
      if (n.extraMembers) notes.push(`${label} stream has ${n.extraMembers + 1} concatenated members`);
      if (n.trailingBytes) notes.push(`${label} stream followed by ${n.trailingBytes} bytes of trailing data (ignored)`);
    }
  }
  return { chain, member, xml: withNotes(), notes, mail };
}

/**
 * Files up to this size are read in one piece: a fleet's daily reports are a
 * few KB each, and streaming one (a read stream, then yauzl opening a zip a
 * second time, then a stat) cost more system calls and event-loop turns
 * than parsing it. Bigger files are streamed, so memory stays flat.
 */
export const READ_WHOLE_BYTES = 1024 * 1024;

/** The file's size, and its bytes when it is small (one open, one stat, one read, one close). */
async function readSmallFile(path: string): Promise<{ size: number; bytes: Buffer | null }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > READ_WHOLE_BYTES) return { size, bytes: null };
    const bytes = Buffer.allocUnsafe(size);
    let filled = 0;
    // A file that shrank under us ends where its bytes end; one that grew is read as it was when we looked.
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { size: filled, bytes: bytes.subarray(0, filled) };
  } finally {
    await handle.close();
  }
}

const ZIP_OPTIONS: yauzl.Options = { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: false, decodeStrings: true };

function openZip(open: (cb: (err: Error | null, zip: yauzl.ZipFile) => void) => void): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    open((err, zip) => {
      if (err) reject(new ReportError('container', `unreadable zip: ${err.message}`, 'zip'));
      else resolve(zip);
    });
  });
}

/** Lists the zip's members (bounded) and opens the first XML one (else the first file), refusing tricks. */
async function openReportMember(zip: yauzl.ZipFile, limits: Limits): Promise<{ stream: AsyncGenerator<Buffer>; name: string }> {
  let entries: yauzl.Entry[];
  try {
    entries = await new Promise<yauzl.Entry[]>((resolve, reject) => {
      const found: yauzl.Entry[] = [];
      zip.on('error', (e: Error) => reject(e));
      zip.on('entry', (e: yauzl.Entry) => {
        if (!e.fileName.endsWith('/')) found.push(e);
        if (found.length >= MAX_ZIP_ENTRIES) resolve(found);
        else zip.readEntry();
      });
      zip.on('end', () => resolve(found));
      zip.readEntry();
    });
  } catch (e) {
    zip.close();
    throw new ReportError('container', `refused zip: ${errorMessage(e)}`, 'zip', { cause: e });
  }
  const entry = entries.find((e) => /\.xml$/i.test(e.fileName)) ?? entries[0];
  if (!entry) {
    zip.close();
    throw new ReportError('container', 'zip holds no file', 'zip');
  }
  const field = `zip member ${entry.fileName}`;
  try {
    if (entry.isEncrypted()) throw new ReportError('container', 'zip member is encrypted', field);
    if (entry.uncompressedSize > limits.maxXmlBytes) {
      throw new ReportError(
        'limit',
        `zip member declares ${formatBytes(entry.uncompressedSize)} uncompressed, over the ${formatBytes(limits.maxXmlBytes)} limit; refused without inflating`,
        field,
      );
    }
    const rs = await new Promise<Readable>((resolve, reject) => {
      zip.openReadStream(entry, (err, stream) => (err ? reject(new ReportError('container', `unreadable zip member: ${err.message}`, field)) : resolve(stream)));
    });
    async function* read(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of rs) yield chunk as Buffer;
      } catch (e) {
        if (e instanceof ReportError) throw e;
        throw new ReportError('container', `corrupt zip member: ${errorMessage(e)}`, field, { cause: e });
      } finally {
        rs.destroy();
        zip.close();
      }
    }
    return { stream: read(), name: entry.fileName };
  } catch (e) {
    zip.close();
    throw e;
  }
}
