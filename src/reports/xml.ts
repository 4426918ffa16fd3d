/**
 * Streaming aggregate-report XML (RFC 7489 appendix C, RFC 9990) to the
 * normalised model, through saxes: no DTDs, no entity expansion, caps on
 * token size, element depth, attributes and records. Records go out in
 * batches as they are parsed, so memory does not grow with the report.
 *
 * Lenient only where a real reporter is broken and the data is still
 * unambiguous, and every such repair is reported: a stray wrapper start tag
 * before <feedback> (IKEA's unclosed <xs:schema>), bytes that are not valid
 * UTF-8 (decoded as U+FFFD), content after </feedback>.
 */
import { createHash, type Hash } from 'node:crypto';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { canonicalName } from '../names.js';
import { ReportError } from './errors.js';
import type { Limits } from './limits.js';
import type {
  DkimAuthResult,
  PolicyOverrideReason,
  ReportFigures,
  ReportHeader,
  ReportRecord,
  SpfAuthResult,
} from '../report-model/model.js';

/** Namespaces a <feedback> may be in: none, the RFC 7489 draft schema, RFC 9990. */
export const REPORT_NAMESPACES: ReadonlySet<string> = new Set([
  '',
  'http://dmarc.org/dmarc-xml/0.1',
  'urn:ietf:params:xml:ns:dmarc-2.0',
]);

/** Receives the report as it is parsed. The parser waits for each promise before going on. */
export interface ReportSink {
  /** Once, before the first batch of records (also for a report without records). */
  header?(header: ReportHeader): Promise<void> | void;
  /** Records in document order, in batches. */
  records?(batch: ReportRecord[]): Promise<void> | void;
}

export interface ParsedReport {
  header: ReportHeader;
  figures: ReportFigures;
  /** What the lenient parser repaired, in plain words. */
  repairs: string[];
  /** sha256 (hex) of the normalised report: equal hashes are the same report, whatever the container or formatting. */
  contentHash: string;
}

/**
 * Records handed to the sink at a time: every batch but the last has exactly
 * this many (a store can prepare one INSERT for them all). Small batches keep
 * records from living long enough to reach V8's old generation: at 500,
 * storing a 100 MB report swung the process between +30 and +95 MiB of
 * garbage; at 100 it stays about +40 MiB, for the same CPU.
 */
const DEFAULT_BATCH = 100;

type Decl = { encoding: string; bomLength: number };

/** The document's encoding: a BOM first, else the XML declaration, else UTF-8. */
function detectEncoding(head: Buffer): Decl {
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return { encoding: 'utf-8', bomLength: 3 };
  if (head[0] === 0xfe && head[1] === 0xff) return { encoding: 'utf-16be', bomLength: 2 };
  if (head[0] === 0xff && head[1] === 0xfe) return { encoding: 'utf-16le', bomLength: 2 };
  const m = /^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']/.exec(head.toString('latin1'));
  return { encoding: m ? m[1]!.toLowerCase() : 'utf-8', bomLength: 0 };
}

const FFFD_BYTES = Buffer.from([0xef, 0xbf, 0xbd]);

/** Occurrences of the UTF-8 encoding of U+FFFD in `tail + chunk` that end inside `chunk`. */
function countEncodedFFFD(tail: Buffer, chunk: Buffer): number {
  const buf = tail.length ? Buffer.concat([tail, chunk.subarray(0, 2)]) : Buffer.alloc(0);
  let n = 0;
  for (let i = buf.indexOf(FFFD_BYTES); i >= 0 && i < tail.length; i = buf.indexOf(FFFD_BYTES, i + 1)) n++;
  for (let i = chunk.indexOf(FFFD_BYTES); i >= 0; i = chunk.indexOf(FFFD_BYTES, i + 3)) n++;
  return n;
}

function countChar(s: string, ch: string): number {
  let n = 0;
  for (let i = s.indexOf(ch); i >= 0; i = s.indexOf(ch, i + 1)) n++;
  return n;
}

/**
 * A record as hash input: every field in a fixed order, each ended by U+0000,
 * which cannot occur in XML text, so the encoding is unambiguous; `s` marks a
 * string, `n` a null. Part of the stored content hashes: do not change it.
 */
function field(v: string | null): string {
  return v === null ? 'n\u0000' : `s${v}\u0000`;
}
function canonicalRecord(r: ReportRecord): string {
  let out = `R${field(r.source_ip)}${r.count}\u0000${field(r.disposition)}${field(r.dkim)}${field(r.spf)}${field(r.header_from)}${field(
    r.envelope_from,
  )}${field(r.envelope_to)}${r.reasons.length}\u0000`;
  for (const x of r.reasons) out += field(x.type) + field(x.comment);
  out += `${r.auth_dkim.length}\u0000`;
  for (const x of r.auth_dkim) out += field(x.domain) + field(x.selector) + field(x.result) + field(x.human_result);
  out += `${r.auth_spf.length}\u0000`;
  for (const x of r.auth_spf) out += field(x.domain) + field(x.scope) + field(x.result) + field(x.human_result);
  return out;
}

/**
 * A value as a string of its own. saxes hands out text as slices of the
 * piece of input it is parsing, and V8 keeps a substring of 13 characters or
 * more as a view into its parent: a record value kept after its piece (a
 * rollup entry held until the report is whole) kept the whole 64 KiB piece
 * alive with it (a 100 MB report whose source IPs were that long held 14 MiB
 * more live heap, and its ingest peaked 54 MiB higher). Prepending a
 * character and slicing it off copies the value: V8 flattens the
 * concatenation into a new string, and the slice is a view of that one.
 */
function ownString(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}

function orNull(s: string): string | null {
  return s === '' ? null : s;
}
function lowerOrNull(s: string): string | null {
  return s === '' ? null : s.toLowerCase();
}

/** Epoch seconds: an integer, tolerating a `.0` fraction some reporters add. */
function epoch(value: string, field: string): number {
  const m = /^(\d{1,15})(?:\.0*)?$/.exec(value);
  if (!m) throw new ReportError('schema', `${value === '' ? 'empty' : `"${value.slice(0, 40)}" is not a`} date (epoch seconds expected)`, field);
  return Number(m[1]);
}

/** One distinct element path inside <feedback>, built once, with what its text is for. */
interface PathNode {
  key: string;
  children: Map<string, PathNode>;
  record?: ((r: ReportRecord, v: string) => void) | undefined;
  header?: ((v: string, key: string) => void) | undefined;
  /** Whether the element's text is read (a leaf we keep); elsewhere the text handler is off. */
  readsText: boolean;
}

/** Record elements whose handlers act on the element, not on its text. */
const RECORD_CONTAINERS: ReadonlySet<string> = new Set(['record', 'record/row/policy_evaluated/reason', 'record/auth_results/dkim', 'record/auth_results/spf']);

interface SaxesInternals {
  text: string;
  name: string;
  attribList: unknown[];
  /** Characters consumed before the chunk being written; after write() returns, all of them (saxes's `position` then counts the last chunk twice). */
  chunkPosition: number;
}

/**
 * Bytes decoded and handed to saxes at a time. A container may yield one
 * piece of any size (a stored zip member comes out whole); fed in pieces, the
 * token caps are checked every piece and no string is bigger than this.
 */
const FEED_PIECE = 64 * 1024;

function newRecord(): ReportRecord {
  return {
    source_ip: '',
    count: -1,
    disposition: null,
    dkim: null,
    spf: null,
    reasons: [],
    header_from: null,
    envelope_from: null,
    envelope_to: null,
    auth_dkim: [],
    auth_spf: [],
  };
}

/**
 * saxes with its event-handler slots declared in the constructor. saxes's
 * on() adds each handler as a new property through a computed key; past a
 * handful of those V8 turns the parser into a dictionary-mode object, and
 * every field read in saxes's per-character loop becomes a hash lookup: with
 * the eight handlers below the parse ran four to five times slower than a
 * bare saxes pass. Declared here by name, on() only overwrites them and the
 * parser keeps its fast shape. (The slot names are saxes 6's; were they ever
 * renamed, on() would still work, only slower.)
 */
class ReportSaxesParser extends SaxesParser<{ xmlns: true; position: true }> {
  constructor() {
    super({ xmlns: true, position: true });
    const slots = this as unknown as Record<string, undefined>;
    slots.textHandler = undefined;
    slots.cdataHandler = undefined;
    slots.openTagHandler = undefined;
    slots.closeTagHandler = undefined;
    slots.commentHandler = undefined;
    slots.piHandler = undefined;
    slots.doctypeHandler = undefined;
    slots.errorHandler = undefined;
  }
}

/**
 * Parses one aggregate report from its XML bytes. Throws a ReportError that
 * names the element at fault when the report is not usable.
 */
export async function parseReportXml(
  xml: AsyncIterable<Buffer>,
  limits: Limits,
  sink: ReportSink = {},
  batchSize: number = DEFAULT_BATCH,
): Promise<ParsedReport> {
  const parser = new ReportSaxesParser();
  const internals = parser as unknown as SaxesInternals;
  const hash: Hash = createHash('sha256');
  const repairs: string[] = [];

  const header: ReportHeader = {
    metadata: {
      org: '',
      email: null,
      extra_contact_info: null,
      report_id: '',
      begin: NaN,
      end: NaN,
      errors: [],
      generator: null,
      version: null,
      namespace: null,
    },
    policy: {
      domain: '',
      p: null,
      sp: null,
      np: null,
      pct: null,
      t: null,
      adkim: null,
      aspf: null,
      fo: null,
      discovery_method: null,
    },
  };
  const seen = new Set<string>();
  const figures: ReportFigures = { records: 0, messages: 0, dmarc_pass: 0, dmarc_fail: 0 };

  let depth = 0;
  let rootName: string | null = null;
  let wrapper: string | null = null;
  let inFeedback = false;
  let feedbackDone = false;
  let feedbackDepth = 0;
  let feedbackNs = '';
  // Element path inside <feedback> ('record/row/count'); the joined keys are memoised so each
  // distinct path is built once, not per element.
  let path: string[] = [];
  const nodeStack: PathNode[] = [];
  const rootNode: PathNode = { key: '', children: new Map(), readsText: false };
  const childNode = (parent: PathNode, seg: string): PathNode => {
    let n = parent.children.get(seg);
    if (n === undefined) {
      const key = parent.key === '' ? seg : `${parent.key}/${seg}`;
      const record = recordLeaves[key];
      const header = headerLeaves[key];
      n = { key, children: new Map(), record, header, readsText: header !== undefined || (record !== undefined && !RECORD_CONTAINERS.has(key)) };
      parent.children.set(seg, n);
    }
    return n;
  };
  let text = '';
  let headerReady = false;
  let headerSent = false;
  let stopFeeding = false;
  let afterRoot: string | null = null;
  let rec: ReportRecord | null = null;
  let dkim: DkimAuthResult | null = null;
  let spf: SpfAuthResult | null = null;
  let reason: PolicyOverrideReason | null = null;
  let pending: ReportRecord[] = [];
  /** Canonical record text not yet fed to the hash (fed in big pieces: one update per record is slow). */
  let hashBuf = '';
  /** Whether saxes hands us text now (see listenToText). */
  let listening = false;
  /** Where the last token we were handed (a tag, text we listen to, a comment, a PI) ended, in characters. */
  let lastEvent = 0;

  const where = () => (path.length ? path.join('/') : 'feedback');
  const recField = (leaf: string) => `record[${figures.records + 1}]/${leaf}`;

  function completeHeader(): void {
    if (headerReady) return;
    const m = header.metadata;
    if (!seen.has('report_metadata')) throw new ReportError('schema', 'missing (no <report_metadata> before the records)', 'report_metadata');
    if (!seen.has('org_name')) throw new ReportError('schema', 'missing', 'report_metadata/org_name');
    if (m.report_id === '') throw new ReportError('schema', seen.has('report_id') ? 'empty' : 'missing', 'report_metadata/report_id');
    if (!seen.has('begin')) throw new ReportError('schema', 'missing', 'report_metadata/date_range/begin');
    if (!seen.has('end')) throw new ReportError('schema', 'missing', 'report_metadata/date_range/end');
    if (m.end < m.begin) throw new ReportError('schema', `end (${m.end}) is before begin (${m.begin})`, 'report_metadata/date_range');
    if (header.policy.domain === '') {
      throw new ReportError('schema', seen.has('policy_published/domain') ? 'empty' : 'missing', 'policy_published/domain');
    }
    m.namespace = feedbackNs === '' ? null : feedbackNs;
    hash.update(JSON.stringify(header));
    hash.update('\n');
    headerReady = true;
  }

  function fail(kind: 'xml' | 'schema' | 'limit', message: string, field: string | null): never {
    throw new ReportError(kind, message, field);
  }

  parser.on('doctype', () => fail('xml', 'DOCTYPE declarations are refused (no DTDs, no entity expansion)', 'DOCTYPE'));
  parser.on('error', (err) => {
    if (feedbackDone) {
      // After </feedback>: the report is complete; anything else is noise we ignore (and say so).
      afterRoot ??= err.message;
      stopFeeding = true;
      return;
    }
    fail('xml', `not well-formed XML: ${err.message}`, inFeedback ? where() : null);
  });

  parser.on('opentag', (tag: SaxesTagNS) => {
    lastEvent = parser.position;
    depth++;
    if (depth > limits.maxElementDepth) fail('limit', `elements nested more than ${limits.maxElementDepth} deep`, where());
    let attributes = 0;
    for (const _ in tag.attributes) attributes++;
    if (attributes > limits.maxAttributes) {
      fail('limit', `an element has more than ${limits.maxAttributes} attributes`, inFeedback ? `${where()}/${tag.local}` : tag.local);
    }
    if (!inFeedback) {
      if (depth === 1) rootName = tag.name;
      if (tag.local === 'feedback' && depth <= 2 && !feedbackDone) {
        if (!REPORT_NAMESPACES.has(tag.uri)) fail('schema', `<feedback> is in an unknown namespace "${tag.uri}"`, 'feedback');
        if (depth === 2) wrapper = rootName;
        inFeedback = true;
        feedbackDepth = depth;
        feedbackNs = tag.uri;
        path = [];
        nodeStack.length = 0;
        listenToText(false);
        return;
      }
      if (feedbackDone && tag.local === 'feedback') fail('schema', 'more than one <feedback> in the document', 'feedback');
      return;
    }
    const foreign = tag.uri !== '' && tag.uri !== feedbackNs;
    const seg = foreign ? `{${tag.uri}}${tag.local}` : tag.local;
    const node = childNode(nodeStack.length ? nodeStack[nodeStack.length - 1]! : rootNode, seg);
    nodeStack.push(node);
    path.push(seg);
    text = '';
    listenToText(node.readsText);
    if (path.length === 1) {
      seen.add(seg);
      if (seg === 'record') {
        completeHeader();
        if (figures.records >= limits.maxRecords) {
          fail('limit', `more than ${limits.maxRecords} records in one report (limit)`, 'record');
        }
        rec = newRecord();
      }
      return;
    }
    if (!rec) return;
    if (path.length === 3 && path[1] === 'auth_results') {
      if (seg === 'dkim') dkim = { domain: null, selector: null, result: null, human_result: null };
      else if (seg === 'spf') spf = { domain: null, scope: null, result: null, human_result: null };
    } else if (path.length === 4 && seg === 'reason' && path[2] === 'policy_evaluated') {
      reason = { type: null, comment: null };
    }
  });

  const onText = (t: string) => {
    lastEvent = parser.position;
    if (!inFeedback) {
      noise(t.length);
      return;
    }
    text += t;
    if (text.length > limits.maxTokenChars) fail('limit', `text longer than ${limits.maxTokenChars} characters`, where());
  };
  // Text is listened to only where it is read (outside <feedback> too, for the noise budget): saxes
  // skips text without building strings while no handler is set, and most text in a report is the
  // whitespace between elements. Without a handler saxes accumulates nothing either.
  const listenToText = (on: boolean) => {
    if (on === listening) return;
    listening = on;
    if (on) parser.on('text', onText);
    else parser.off('text');
  };
  listenToText(true);
  parser.on('cdata', onText);
  // Comments, processing instructions and text outside the report carry no data; a budget keeps a bomb of them cheap.
  let nonData = 0;
  const noise = (n: number) => {
    nonData += n;
    if (nonData > limits.maxNonDataChars) fail('limit', `more than ${limits.maxNonDataChars} characters of comments, processing instructions or text outside the report (limit)`, inFeedback ? where() : null);
  };
  parser.on('comment', (c: string) => {
    lastEvent = parser.position;
    noise(c.length);
  });
  parser.on('processinginstruction', (pi: { target: string; body: string }) => {
    lastEvent = parser.position;
    noise(pi.target.length + pi.body.length);
  });

  parser.on('closetag', () => {
    lastEvent = parser.position;
    if (!inFeedback) {
      depth--;
      return;
    }
    if (depth === feedbackDepth) {
      inFeedback = false;
      feedbackDone = true;
      depth--;
      listenToText(true);
      return;
    }
    const node = nodeStack.pop()!;
    const v = text.length ? ownString(text.trim()) : '';
    text = '';
    depth--;
    path.pop();
    listenToText(nodeStack.length > 0 && nodeStack[nodeStack.length - 1]!.readsText);
    assign(node, v);
  });

  const m = header.metadata;
  const p = header.policy;
  /** What to do with the text of each element we read, by path inside <feedback>. */
  const recordLeaves: Record<string, (r: ReportRecord, v: string) => void> = {
    'record/row/source_ip': (r, v) => void (r.source_ip = v),
    'record/row/count': (r, v) => {
      if (!/^\d{1,16}$/.test(v) || Number(v) > Number.MAX_SAFE_INTEGER) {
        fail('schema', v === '' ? 'empty (a message count is required)' : `"${v.slice(0, 40)}" is not a message count`, recField('row/count'));
      }
      r.count = Number(v);
    },
    'record/row/policy_evaluated/disposition': (r, v) => void (r.disposition = lowerOrNull(v)),
    'record/row/policy_evaluated/dkim': (r, v) => void (r.dkim = lowerOrNull(v)),
    'record/row/policy_evaluated/spf': (r, v) => void (r.spf = lowerOrNull(v)),
    'record/row/policy_evaluated/reason/type': (_r, v) => void (reason && (reason.type = lowerOrNull(v))),
    'record/row/policy_evaluated/reason/comment': (_r, v) => void (reason && (reason.comment = orNull(v))),
    'record/row/policy_evaluated/reason': (r) => {
      if (reason) r.reasons.push(reason);
      reason = null;
    },
    'record/identifiers/header_from': (r, v) => void (r.header_from = lowerOrNull(v)),
    'record/identifiers/envelope_from': (r, v) => void (r.envelope_from = lowerOrNull(v)),
    'record/identifiers/envelope_to': (r, v) => void (r.envelope_to = lowerOrNull(v)),
    // RFC 9990 names the element <identities>; reporters send both spellings.
    'record/identities/header_from': (r, v) => void (r.header_from = lowerOrNull(v)),
    'record/identities/envelope_from': (r, v) => void (r.envelope_from = lowerOrNull(v)),
    'record/identities/envelope_to': (r, v) => void (r.envelope_to = lowerOrNull(v)),
    'record/auth_results/dkim/domain': (_r, v) => void (dkim && (dkim.domain = lowerOrNull(v))),
    'record/auth_results/dkim/selector': (_r, v) => void (dkim && (dkim.selector = orNull(v))),
    'record/auth_results/dkim/result': (_r, v) => void (dkim && (dkim.result = lowerOrNull(v))),
    'record/auth_results/dkim/human_result': (_r, v) => void (dkim && (dkim.human_result = orNull(v))),
    'record/auth_results/dkim': (r) => {
      if (dkim) r.auth_dkim.push(dkim);
      dkim = null;
    },
    'record/auth_results/spf/domain': (_r, v) => void (spf && (spf.domain = lowerOrNull(v))),
    'record/auth_results/spf/scope': (_r, v) => void (spf && (spf.scope = lowerOrNull(v))),
    'record/auth_results/spf/result': (_r, v) => void (spf && (spf.result = lowerOrNull(v))),
    'record/auth_results/spf/human_result': (_r, v) => void (spf && (spf.human_result = orNull(v))),
    'record/auth_results/spf': (r) => {
      if (spf) r.auth_spf.push(spf);
      spf = null;
    },
    record: (r) => {
      if (r.count < 0) fail('schema', 'missing (a message count is required)', recField('row/count'));
      figures.records++;
      figures.messages += r.count;
      // A report spanning years does not buy years of volume: at most a month's worth counts as plausible.
      const days = Math.min(31, Math.max(1, Math.ceil((m.end - m.begin) / 86_400)));
      if (figures.messages > limits.maxMessagesPerDay * days) {
        fail('limit', `the report claims more than ${limits.maxMessagesPerDay} messages per day for ${days} day(s) (up to record ${figures.records}); no reporter sees that much mail for one domain, refused`, `record[${figures.records}]/row/count`);
      }
      if (r.dkim === 'pass' || r.spf === 'pass') figures.dmarc_pass += r.count;
      else figures.dmarc_fail += r.count;
      hashBuf += canonicalRecord(r);
      if (hashBuf.length > 65536) {
        hash.update(hashBuf);
        hashBuf = '';
      }
      pending.push(r);
      rec = null;
    },
  };
  const headerLeaves: Record<string, (v: string, key: string) => void> = {
    version: (v) => void (m.version = orNull(v)),
    'report_metadata/org_name': (v) => {
      seen.add('org_name');
      m.org = v;
    },
    'report_metadata/email': (v) => void (m.email = orNull(v)),
    'report_metadata/extra_contact_info': (v) => void (m.extra_contact_info = orNull(v)),
    'report_metadata/report_id': (v) => {
      seen.add('report_id');
      m.report_id = v;
    },
    'report_metadata/date_range/begin': (v, key) => {
      seen.add('begin');
      m.begin = epoch(v, key);
    },
    'report_metadata/date_range/end': (v, key) => {
      seen.add('end');
      m.end = epoch(v, key);
    },
    'report_metadata/error': (v) => void (v !== '' && m.errors.push(v)),
    'report_metadata/generator': (v) => void (m.generator = orNull(v)),
    'policy_published/domain': (v, key) => {
      seen.add(key);
      p.domain = canonicalName(v);
    },
    'policy_published/p': (v) => void (p.p = lowerOrNull(v)),
    'policy_published/sp': (v) => void (p.sp = lowerOrNull(v)),
    'policy_published/np': (v) => void (p.np = lowerOrNull(v)),
    'policy_published/pct': (v) => {
      const n = /^\d{1,3}$/.test(v) ? Number(v) : NaN;
      p.pct = n >= 0 && n <= 100 ? n : null;
    },
    'policy_published/testing': (v) => void (p.t = lowerOrNull(v)),
    'policy_published/t': (v) => void (p.t = lowerOrNull(v)),
    'policy_published/adkim': (v) => void (p.adkim = lowerOrNull(v)),
    'policy_published/aspf': (v) => void (p.aspf = lowerOrNull(v)),
    'policy_published/fo': (v) => void (p.fo = orNull(v)),
    'policy_published/discovery_method': (v) => void (p.discovery_method = lowerOrNull(v)),
  };

  function assign(node: PathNode, v: string): void {
    if (node.record) {
      if (rec) node.record(rec, v);
      return;
    }
    if (node.header) {
      if (headerReady) fail('schema', 'report metadata after the first <record> is not supported', node.key);
      node.header(v, node.key);
    }
  }

  async function flush(force: boolean): Promise<void> {
    if (headerReady && !headerSent) {
      headerSent = true;
      await sink.header?.(header);
    }
    // A piece of input holds about a hundred records: whole batches go now, the rest waits for the next piece.
    while (pending.length >= batchSize) {
      const batch = pending.length === batchSize ? pending : pending.slice(0, batchSize);
      pending = pending.length === batchSize ? [] : pending.slice(batchSize);
      await sink.records?.(batch);
    }
    if (force && pending.length > 0) {
      const batch = pending;
      pending = [];
      await sink.records?.(batch);
    }
  }

  function checkTokens(): void {
    // Text nobody listens to is not collected, so its length shows only as characters read since the last token.
    if (internals.text.length > limits.maxTokenChars || internals.name.length > limits.maxTokenChars || internals.chunkPosition - lastEvent > limits.maxTokenChars) {
      fail('limit', `an XML token (text, comment, name or attribute value) is longer than ${limits.maxTokenChars} characters`, inFeedback ? where() : null);
    }
    if (internals.attribList.length > limits.maxAttributes) {
      fail('limit', `an element has more than ${limits.maxAttributes} attributes`, inFeedback ? where() : null);
    }
  }

  let decoder: TextDecoder | null = null;
  let utf8 = false;
  let tail: Buffer = Buffer.alloc(0);
  let replaced = 0;
  let headBuf: Buffer[] = [];
  let headLen = 0;

  function feed(bytes: Buffer, final: boolean): void {
    if (!decoder) return;
    if (bytes.length > FEED_PIECE) {
      for (let i = 0; i < bytes.length; i += FEED_PIECE) feed(bytes.subarray(i, i + FEED_PIECE), final && i + FEED_PIECE >= bytes.length);
      return;
    }
    const s = decoder.decode(bytes, { stream: !final });
    if (utf8 && s.includes('\uFFFD')) {
      replaced += countChar(s, '\uFFFD') - countEncodedFFFD(tail, bytes);
    }
    if (utf8 && bytes.length) tail = bytes.subarray(Math.max(0, bytes.length - 2));
    if (!stopFeeding && s.length) {
      parser.write(s);
      checkTokens();
    }
  }

  function startDecoder(head: Buffer): Buffer {
    const decl = detectEncoding(head);
    try {
      decoder = new TextDecoder(decl.encoding, { fatal: false });
    } catch {
      throw new ReportError('xml', `unsupported encoding "${decl.encoding}"`, 'xml declaration');
    }
    utf8 = decoder.encoding === 'utf-8';
    return head;
  }

  for await (const chunk of xml) {
    if (!decoder) {
      headBuf.push(chunk);
      headLen += chunk.length;
      if (headLen < 1024) continue;
      const head = Buffer.concat(headBuf);
      headBuf = [];
      feed(startDecoder(head), false);
    } else {
      feed(chunk, false);
    }
    await flush(false);
  }
  if (!decoder) feed(startDecoder(Buffer.concat(headBuf)), false);
  feed(Buffer.alloc(0), true);

  if (!feedbackDone) {
    parser.close();
    fail('schema', rootName ? `no <feedback> element (the root element is <${rootName}>)` : 'no <feedback> element', 'feedback');
  }
  if (depth > 0 && wrapper) {
    repairs.push(`removed the unclosed <${wrapper}> start tag before <feedback>`);
  } else {
    if (!stopFeeding) parser.close();
    if (wrapper) repairs.push(`unwrapped <feedback> from <${wrapper}>`);
  }
  if (afterRoot) repairs.push(`ignored content after </feedback> (${afterRoot})`);
  if (replaced > 0) repairs.push(`replaced ${replaced} invalid UTF-8 byte sequence${replaced === 1 ? '' : 's'} with U+FFFD`);
  completeHeader();
  await flush(true);
  hash.update(hashBuf);
  return { header, figures, repairs, contentHash: hash.digest('hex') };
}
