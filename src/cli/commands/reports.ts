/**
 * Report commands: `ingest <path…>` stores aggregate reports from files and
 * folders; `report parse <file…>` reads reports and prints their figures,
 * storing nothing. Thin: all the work is in src/reports.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
// Only what `report parse` needs is loaded up front: it stores nothing, so it
// never loads the store, and mail libraries load only for a mail (reports/mime.ts).
import { errorLine, figuresLine } from '../../reports/figures.js';
import { describeError, readReport } from '../../reports/parse.js';
import type { IngestResult, IngestSummary } from '../../reports/ingest.js';

function describeResult(r: IngestResult): string {
  switch (r.status) {
    case 'stored':
      return `stored ${r.source}: ${r.org || '(no org)'} ${r.report_id} ${r.domain}, ${r.records} records, ${r.messages} messages${
        r.counted ? '' : ` (NOT counted: ${r.flag})`
      }${r.repaired ? ` [repaired: ${r.repaired}]` : ''}`;
    case 'duplicate':
      return `duplicate ${r.source}: same as stored report #${r.id}`;
    case 'rejected':
      return `rejected ${r.source}: ${r.field ? `${r.field}: ` : ''}${r.reason}`;
    case 'error':
      return `error ${r.source}: ${r.reason}`;
  }
}

function printSummary(ctx: CliContext, s: IngestSummary, rejectedDir: string): void {
  ctx.out(
    `${s.files} input${s.files === 1 ? '' : 's'}: ${s.stored} stored${s.changed ? ` (${s.changed} changed or re-sent cop${s.changed === 1 ? 'y' : 'ies'} kept but not counted)` : ''}, ${
      s.duplicates
    } duplicate${s.duplicates === 1 ? '' : 's'}, ${s.rejected} rejected, ${s.errors} error${s.errors === 1 ? '' : 's'}`,
  );
  if (s.rejected_reasons.length) {
    ctx.out('rejected, by reason:');
    for (const r of s.rejected_reasons) ctx.out(`  ${String(r.count).padStart(5)}  ${r.reason}`);
    ctx.out(`rejected inputs are kept in ${rejectedDir}`);
  }
}

export function registerReportCommands(program: Command, ctx: CliContext): void {
  program
    .command('ingest')
    .description(
      'Store aggregate reports from files and folders (recursive): xml, gz, zip, zlib or whole mails. Each input ends stored, duplicate, or rejected and kept with its reason; exit 1 only when an input could not be read or kept.',
    )
    .argument('<paths...>', 'files and folders to ingest')
    .option('--json', 'print the summary and every result as one JSON object')
    .option('--rejected-dir <dir>', 'where rejected inputs are kept (default: rejected/ in the data folder)')
    .option('-v, --verbose', 'print one line per input')
    .action(async (paths: string[], opts: { json?: boolean; rejectedDir?: string; verbose?: boolean }) => {
      const [{ ingestPaths }, { defaultRejectedDir }] = await Promise.all([import('../../reports/ingest.js'), import('../../paths.js')]);
      const store = await ctx.store();
      const rejectedDir = opts.rejectedDir ? resolve(opts.rejectedDir) : defaultRejectedDir(ctx.env);
      const cliProgress = !opts.json && ctx.interactive ? (await import('cli-progress')).default : null;
      const bar =
        cliProgress
          ? new cliProgress.SingleBar(
              { format: 'ingest [{bar}] {value}/{total} {percentage}% | {eta_formatted} left | {file}', hideCursor: true, clearOnComplete: true },
              cliProgress.Presets.shades_classic,
            )
          : null;
      const printResult = (r: IngestResult) => {
        if (r.status === 'error') ctx.err(describeResult(r));
        else if (opts.verbose || r.status === 'rejected') ctx.out(describeResult(r));
      };
      const summary = await ingestPaths(store.db, paths, {
        rejectedDir,
        // Every result is kept only when it is printed in full; otherwise the summary keeps the rejected and failed ones.
        keepResults: Boolean(opts.json || (opts.verbose && bar)),
        onStart: (total) => bar?.start(total, 0, { file: '' }),
        onResult: (result, done) => {
          bar?.update(done, { file: result.source.length > 40 ? `…${result.source.slice(-39)}` : result.source });
          // With a bar on screen, per-input lines wait until it is gone.
          if (!bar && !opts.json) printResult(result);
        },
      });
      if (bar) {
        bar.stop();
        for (const r of summary.results) printResult(r);
        if (summary.results_omitted) ctx.out(`(${summary.results_omitted} more rejected or failed inputs not listed; their reasons are counted below)`);
      }
      if (opts.json) ctx.out(JSON.stringify({ ...summary, rejected_dir: rejectedDir }));
      else printSummary(ctx, summary, rejectedDir);
      if (summary.errors > 0) ctx.exitCode = 1;
    });

  const report = program.command('report').description('Aggregate reports');
  report
    .command('parse')
    .description('Read reports and print their figures; stores nothing. Exit 0 when every file was read, 1 otherwise.')
    .argument('<files...>', 'report files (xml, gz, zip, zlib or a whole mail)')
    .option('--json', 'one JSON object per file, one per line, in the order given')
    .action(async (files: string[], opts: { json?: boolean }) => {
      let failed = false;
      for (const file of files) {
        try {
          const r = await readReport({ path: file });
          const line = figuresLine(file, r);
          if (opts.json) ctx.out(JSON.stringify(line));
          else
            ctx.out(
              `${file}: org=${JSON.stringify(line.org)} report_id=${line.report_id} domain=${line.domain} ${new Date(line.begin * 1000).toISOString()}..${new Date(
                line.end * 1000,
              ).toISOString()} records=${line.records} messages=${line.messages} pass=${line.dmarc_pass} fail=${line.dmarc_fail}${
                line.container ? ` container=${line.container}` : ''
              }${line.repaired ? ` repaired: ${line.repaired}` : ''}`,
            );
        } catch (e) {
          failed = true;
          const d = describeError(e);
          if (opts.json) ctx.out(JSON.stringify(errorLine(file, d.reason, d.field)));
          else ctx.err(`${file}: ${d.field ? `${d.field}: ` : ''}${d.reason}`);
        }
      }
      if (failed) ctx.exitCode = 1;
    });
}
