/**
 * `dmarc-rollout record check|render`: look at a `_dmarc` record and build
 * the record for a stage, without touching DNS or the store. Parsing flags
 * and printing is all that happens here; src/record/ does the work.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { errorMessage } from '../../errors.js';
import type { CliContext } from '../context.js';
import {
  POLICIES,
  editRecordForStage,
  interpretRecord,
  joinTxtStrings,
  parseStageLabel,
  quoteTxt,
  splitTxtStrings,
  unquoteTxt,
  type Policy,
  type PolicyApplication,
  type ReceiverInterpretation,
  type RecordProblem,
  type StageTarget,
} from '../../record/index.js';

export function registerRecordCommands(program: Command, ctx: CliContext): void {
  const record = program.command('record').description('Check a _dmarc record, or build the record for a rollout stage.');

  record
    .command('check')
    .description(
      'Validate a _dmarc TXT record and show how RFC 7489 and RFC 9989 receivers apply it. Exits 1 when it is invalid. ' +
        'A record in quoted presentation format (as dig prints it) is unquoted first.',
    )
    .argument('<record>', "the record, e.g. 'v=DMARC1; p=none; rua=mailto:dmarc@example.com'")
    .option('--json', 'print one JSON object instead of text')
    .action((text: string, opts: { json?: boolean }) => {
      const recordText = readRecordArgument(text);
      const result = interpretRecord(recordText);
      ctx.exitCode = result.valid ? 0 : 1;
      if (opts.json) {
        ctx.out(
          JSON.stringify(
            {
              record: recordText,
              valid: result.valid,
              problems: result.problems.map(problemJson),
              tags: result.tags.map((tag) => ({ name: tag.name, value: tag.value })),
              txtStrings: splitTxtStrings(recordText),
              rfc7489: receiverJson(result.rfc7489),
              rfc9989: receiverJson(result.rfc9989),
            },
          ),
        );
        return;
      }
      const errors = result.problems.filter((p) => p.severity === 'error').length;
      const warnings = result.problems.length - errors;
      const lines = [
        `record: ${recordText}`,
        `valid: ${result.valid ? 'yes' : 'no'} (${plural(errors, 'error')}, ${plural(warnings, 'warning')})`,
        ...result.problems.map((p) => `  ${p.severity.padEnd(7)} ${(p.tag ?? '-').padEnd(5)} ${p.reason}`),
        'tags:',
        ...(result.tags.length === 0 ? ['  (none)'] : result.tags.map((tag) => `  ${tag.name}=${tag.value}`)),
        result.rfc7489.summary,
        result.rfc9989.summary,
      ];
      ctx.out(lines.join('\n'));
    });

  record
    .command('render')
    .description(
      'Print the _dmarc record for a stage, made by editing --from when given. Only p, pct, t (and sp/np when managed) change; ' +
        'every other tag keeps its value and place. Exits 1 with the reasons when the result would be invalid.',
    )
    .addOption(
      new Option('--stage <stage>', 'the stage as <policy>:<pct>, e.g. none:100, quarantine:5, reject:100')
        .argParser(stageArgument)
        .makeOptionMandatory(),
    )
    .option('--from <record>', 'the current record to edit (plain or quoted presentation format)')
    .option('--rua <uri>', 'report URI(s) replacing rua, e.g. mailto:dmarc@example.com; repeat or separate with commas', collect)
    .addOption(new Option('--manage-sp <policy>', 'also set sp to this policy').choices(POLICIES))
    .addOption(new Option('--manage-np <policy>', 'also set np to this policy').choices(POLICIES))
    .option('--quoted', 'print the record as quoted 255-octet strings, as zone files and provider APIs take it')
    .option('--json', 'print one JSON object instead of text')
    .action(
      (opts: {
        stage: StageTarget;
        from?: string;
        rua?: string[];
        manageSp?: Policy;
        manageNp?: Policy;
        quoted?: boolean;
        json?: boolean;
      }) => {
        const manage: { sp?: Policy; np?: Policy } = {};
        if (opts.manageSp) manage.sp = opts.manageSp;
        if (opts.manageNp) manage.np = opts.manageNp;
        const result = editRecordForStage(opts.from === undefined ? null : readRecordArgument(opts.from), opts.stage, {
          ...(opts.rua === undefined ? {} : { rua: opts.rua }),
          manage,
        });
        ctx.exitCode = result.ok ? 0 : 1;
        if (opts.json) {
          ctx.out(
            JSON.stringify(
              result.ok
                ? { ok: true, record: result.record, txtStrings: splitTxtStrings(result.record), problems: result.warnings.map(problemJson) }
                : { ok: false, record: null, txtStrings: null, problems: result.problems.map(problemJson) },
            ),
          );
          return;
        }
        if (!result.ok) {
          ctx.err(['the record for this stage would be invalid:', ...result.problems.map(problemLine)].join('\n'));
          return;
        }
        for (const w of result.warnings) ctx.err(problemLine(w));
        ctx.out(opts.quoted ? quoteTxt(splitTxtStrings(result.record)) : result.record);
      },
    );
}

/** Accepts a record as typed or as copied from `dig` (`"v=DMARC1; ..." "..."`). */
function readRecordArgument(text: string): string {
  return joinTxtStrings(unquoteTxt(text));
}

function stageArgument(value: string): StageTarget {
  try {
    return parseStageLabel(value);
  } catch (e) {
    throw new InvalidArgumentError(errorMessage(e));
  }
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((uri) => uri.trim()).filter((uri) => uri !== '')];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function problemLine(p: RecordProblem): string {
  return `${p.severity}: ${p.reason}`;
}

function problemJson(p: RecordProblem): { severity: string; code: string; tag: string | null; reason: string } {
  return { severity: p.severity, code: p.code, tag: p.tag, reason: p.reason };
}

function applicationJson(a: PolicyApplication | null) {
  return a === null ? null : { requested: a.requested, source: a.source, applied: a.applied, percent: a.percent, rest: a.rest };
}

function receiverJson(r: ReceiverInterpretation) {
  return {
    usesRecord: r.usesRecord,
    note: r.note,
    testing: r.testing,
    psd: r.psd,
    domain: applicationJson(r.domain),
    subdomains: applicationJson(r.subdomains),
    nonExistentSubdomains: applicationJson(r.nonExistentSubdomains),
    summary: r.summary,
  };
}
