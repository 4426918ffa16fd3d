/**
 * The floor of the ingest benchmark (bench/ingest.ts): a bare saxes pass
 * (xmlns on, no handlers) over the same bytes, after the same reading and
 * inflating. Plain JavaScript, so that the compiled build's probe
 * (ingest-cli-probe.mjs) runs it without tsx, inside the command's process.
 */
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, inflateRawSync } from 'node:zlib';
import { SaxesParser } from 'saxes';

/** @param {Iterable<Buffer>} pieces */
export function saxesPass(pieces) {
  const p = new SaxesParser({ xmlns: true });
  const d = new TextDecoder('utf-8');
  for (const b of pieces) p.write(d.decode(b, { stream: true }));
  p.write(d.decode());
  p.close();
}

/** @param {Buffer} b */
function* in64k(b) {
  for (let i = 0; i < b.length; i += 64 * 1024) yield b.subarray(i, i + 64 * 1024);
}

/** The single member of a zip written by test/fixtures/reports/make.ts makeZip(), inflated (bare: no zip library). @param {Buffer} zip */
function unzipOnly(zip) {
  const nameLength = zip.readUInt16LE(26);
  const size = zip.readUInt32LE(18);
  return inflateRawSync(zip.subarray(30 + nameLength, 30 + nameLength + size));
}

/** Every file under `dir`, in name order, one folder's names held at a time (as ingest walks). @param {string} dir @returns {Generator<string>} */
export function* walkFiles(dir) {
  for (const n of readdirSync(dir).sort()) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) yield* walkFiles(p);
    else yield p;
  }
}

/** Read, inflate and saxes every file under `dir`: the floor for the small reports. @param {string} dir */
export function bareSmall(dir) {
  for (const f of walkFiles(dir)) {
    const raw = readFileSync(f);
    const xml = f.endsWith('.zip') ? unzipOnly(raw) : f.endsWith('.gz') ? gunzipSync(raw) : raw;
    saxesPass(in64k(xml));
  }
}

/** saxes over a file streamed in 64 KiB pieces: the floor for one big report. @param {string} path */
export async function bareFile(path) {
  const p = new SaxesParser({ xmlns: true });
  const d = new TextDecoder('utf-8');
  for await (const c of createReadStream(path, { highWaterMark: 64 * 1024 })) p.write(d.decode(/** @type {Buffer} */ (c), { stream: true }));
  p.close();
}
