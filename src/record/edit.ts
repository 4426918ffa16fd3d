/**
 * Producing the record for a stage, by editing the record the owner already
 * has. Only the managed tags change (`p`, `pct`, `t`, and `sp`/`np` when the
 * plan manages them); every other tag keeps its value and its place, so an
 * owner's reporting setup survives the whole rollout. The result is
 * validated, and an invalid result is refused rather than returned.
 *
 * Placement: `v` first and `p` second (RFC 7489 receivers expect both
 * there). A managed tag already in the record keeps its place, so the edit
 * is the smallest diff; a new one goes right after `p`, in the order pct, t,
 * sp, np, so the stage reads at the front of the record. A new `rua` from the
 * caller goes after that run of managed tags.
 */
import { parseRecord, type RecordTag } from './parse.js';
import { isPolicy, type Policy } from './policy.js';
import { error, hasErrors, type ProblemCode, type RecordProblem } from './problem.js';
import { serializeRecord } from './serialize.js';
import { stageProblem, type StageTarget } from './stage.js';
import { validateParsed } from './validate.js';

/** What an edit may change besides the stage's own tags. */
export interface EditOptions {
  /** Report URIs (e.g. `mailto:dmarc@example.com`) that replace the rua tag, or are added as one. */
  rua?: string[];
  /** Subdomain policies the plan manages; a tag not named here is left as the owner wrote it. */
  manage?: { sp?: Policy; np?: Policy };
}

/** The record to publish, or why there is none. */
export type EditResult =
  | { ok: true; record: string; warnings: RecordProblem[] }
  | { ok: false; problems: RecordProblem[] };

/** The tags a stage sets, in the order new ones are inserted after `p`. */
const MANAGED_ORDER = ['pct', 't', 'sp', 'np'] as const;

// Problems of the current record that an edit cannot repair without guessing
// what the owner meant: text that is not a tag would be dropped, a duplicate
// would make us pick one, and a record that is not a DMARC record is not ours to take over.
const BLOCKING: ReadonlySet<ProblemCode> = new Set<ProblemCode>([
  'syntax',
  'bad-characters',
  'duplicate-tag',
  'missing-version',
  'misplaced-version',
  'bad-version',
]);

/**
 * The record for `stage`, made by editing `current` (null or blank: a fresh
 * record). Refused with every problem when the stage or options are invalid,
 * when `current` has problems an edit cannot repair, or when the result would
 * not be valid. Never throws.
 */
export function editRecordForStage(current: string | null, stage: StageTarget, opts: EditOptions = {}): EditResult {
  const inputProblems = optionProblems(stage, opts);
  if (inputProblems.length > 0) return { ok: false, problems: inputProblems };

  let tags: RecordTag[];
  if (current === null || current.trim() === '') {
    tags = [{ name: 'v', value: 'DMARC1' }];
  } else {
    const parsed = parseRecord(current);
    const blocking = validateParsed(current, parsed).filter((p) => p.severity === 'error' && BLOCKING.has(p.code));
    if (blocking.length > 0) {
      return { ok: false, problems: blocking.map((p) => ({ ...p, reason: `current record: ${p.reason}` })) };
    }
    tags = parsed.tags;
  }

  const wanted = new Map<string, string | null>([
    ['p', stage.policy],
    ['pct', stage.pct < 100 ? String(stage.pct) : null],
    ['t', stage.pct < 100 ? 'y' : null],
  ]);
  if (opts.manage?.sp !== undefined) wanted.set('sp', opts.manage.sp);
  if (opts.manage?.np !== undefined) wanted.set('np', opts.manage.np);

  const rest = tags
    .filter((tag) => tag.name !== 'v' && tag.name !== 'p')
    .flatMap((tag): RecordTag[] => {
      if (!wanted.has(tag.name)) return [tag];
      const value = wanted.get(tag.name);
      return value === null || value === undefined ? [] : [{ name: tag.name, value }];
    });
  const present = new Set(rest.map((tag) => tag.name));
  const inserted: RecordTag[] = MANAGED_ORDER.filter((name) => !present.has(name) && typeof wanted.get(name) === 'string').map(
    (name) => ({ name, value: wanted.get(name)! }),
  );
  const edited: RecordTag[] = [{ name: 'v', value: 'DMARC1' }, { name: 'p', value: stage.policy }, ...inserted, ...rest];

  if (opts.rua !== undefined) {
    const value = opts.rua.join(',');
    const existing = edited.findIndex((tag) => tag.name === 'rua');
    if (existing >= 0) {
      edited[existing] = { name: 'rua', value };
    } else {
      let at = 2;
      while (at < edited.length && wanted.has(edited[at]!.name)) at += 1;
      edited.splice(at, 0, { name: 'rua', value });
    }
  }

  const record = serializeRecord(edited);
  const problems = validateParsed(record, parseRecord(record));
  if (hasErrors(problems)) return { ok: false, problems };
  return { ok: true, record, warnings: problems };
}

/** The fresh record for `stage`: `editRecordForStage(null, stage, opts)`. */
export function recordForStage(stage: StageTarget, opts: EditOptions = {}): EditResult {
  return editRecordForStage(null, stage, opts);
}

function optionProblems(stage: StageTarget, opts: EditOptions): RecordProblem[] {
  const problems: RecordProblem[] = [];
  const stageReason = stageProblem(stage);
  if (stageReason) problems.push(error('bad-stage', null, stageReason));
  for (const name of ['sp', 'np'] as const) {
    const policy = opts.manage?.[name];
    if (policy !== undefined && !isPolicy(policy)) {
      problems.push(error('bad-option', name, `managed ${name} must be none, quarantine or reject, got ${JSON.stringify(policy)}`));
    }
  }
  if (opts.rua !== undefined) {
    if (opts.rua.length === 0) problems.push(error('bad-option', 'rua', 'the rua override names no URI'));
    for (const uri of opts.rua) {
      // A comma or semicolon inside one entry would silently become a second URI or a second tag.
      if (/[,;]/.test(uri)) problems.push(error('bad-option', 'rua', `rua entry ${JSON.stringify(uri)} contains "," or ";"`));
    }
  }
  return problems;
}
