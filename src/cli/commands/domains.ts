/** CLI commands of this group; registered by src/cli/main.ts. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';

export function registerDomainCommands(_program: Command, _ctx: CliContext): void {}
