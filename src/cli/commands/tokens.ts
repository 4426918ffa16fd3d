/** `token create`: a new API token, shown once, with the hashed entry to put in the config or token file. */
import { Option, type Command } from 'commander';
import { stringify } from 'yaml';
import { apiTokenEntrySchema } from '../../api/config.js';
import { generateToken } from '../../api/tokens.js';
import { AppError } from '../../errors.js';
import type { CliContext } from '../context.js';

export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('API tokens for the HTTP API and the web page');
  token
    .command('create')
    .description('make a token; prints it once, and the entry (its SHA-256 only) for api.tokens or the tokens file')
    .argument('<name>', 'who holds it, as the audit log will show it (e.g. alice, prometheus)')
    .addOption(new Option('--role <role>', 'viewer reads; operator also approves, pauses, rolls back').choices(['viewer', 'operator']).makeOptionMandatory())
    .option('--json', 'print { name, role, token, sha256 }')
    .action((name: string, opts: { role: 'viewer' | 'operator'; json?: boolean }) => {
      const { token: secret, sha256 } = generateToken();
      const entry = apiTokenEntrySchema.safeParse({ name, role: opts.role, sha256 });
      if (!entry.success) {
        ctx.fail(new AppError('invalid', `token name "${name}": ${entry.error.issues[0]!.message}`, { field: 'name' }));
        return;
      }
      if (opts.json) {
        ctx.out(JSON.stringify({ name, role: opts.role, token: secret, sha256 }));
        return;
      }
      ctx.out(`token for ${name} (${opts.role}), shown this once; give it to its holder:\n\n  ${secret}\n\n`);
      ctx.out(`add this entry to api.tokens in the daemon config, or to the api.tokens_file list:\n`);
      ctx.out(stringify([entry.data]).trimEnd());
    });
}
