import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../util/errors.js';

/**
 * One `sat` sub-command. Each lives in its own file under src/cli/ and is registered in src/cli.ts.
 * `options` doubles as the --help text: every option has a description and, where it has one, a default.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  description: string;
  default?: string | boolean;
  short?: string;
  multiple?: boolean;
  /** Accepted but left out of --help (an old spelling kept for one release). */
  hidden?: boolean;
}

export interface Command {
  name: string;
  summary: string;
  usage: string; // e.g. "sat features --run DIR [options]"
  options: Record<string, OptionSpec>;
  allowPositionals?: boolean;
  run(args: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] }): Promise<void>;
}

export function parseCommandArgs(cmd: Command, argv: string[]) {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, spec] of Object.entries(cmd.options)) {
    // parseArgs rejects keys that are present but undefined, so only pass what the spec sets.
    options[name] = {
      type: spec.type,
      ...(spec.short !== undefined ? { short: spec.short } : {}),
      ...(spec.multiple !== undefined ? { multiple: spec.multiple } : {}),
      ...(spec.default !== undefined ? { default: spec.default as never } : {}),
    };
  }
  try {
    return parseArgs({ args: argv, options, allowPositionals: cmd.allowPositionals ?? false, strict: true });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\nRun \`sat ${cmd.name} --help\` for its options.`);
  }
}

export function commandHelp(cmd: Command): string {
  const lines = [`${cmd.summary}`, '', `Usage: ${cmd.usage}`, '', 'Options:'];
  const names = Object.keys(cmd.options).filter((n) => !cmd.options[n].hidden);
  const width = Math.max(...names.map((n) => n.length + (cmd.options[n].type === 'string' ? 6 : 0)), 8) + 4;
  for (const n of names) {
    const o = cmd.options[n];
    const flag = `--${n}${o.type === 'string' ? ' VALUE' : ''}`;
    const def = o.default !== undefined ? ` (default: ${o.default})` : '';
    lines.push(`  ${flag.padEnd(width)}${o.description}${def}`);
  }
  return lines.join('\n');
}

/** Read a string option that must be present. */
export function requireString(values: Record<string, unknown>, name: string, hint: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.length === 0) throw new UserError(`--${name} is required: ${hint}`);
  return v;
}

/** Parse a numeric option, naming the option in the error. */
export function numberOption(
  values: Record<string, unknown>,
  name: string,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (
    !Number.isFinite(n) ||
    (opts.integer && !Number.isInteger(n)) ||
    (opts.min !== undefined && n < opts.min) ||
    (opts.max !== undefined && n > opts.max)
  ) {
    const range = [
      opts.integer ? 'an integer' : 'a number',
      opts.min !== undefined ? `>= ${opts.min}` : '',
      opts.max !== undefined ? `<= ${opts.max}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    throw new UserError(`--${name} must be ${range}, got "${String(v)}".`);
  }
  return n;
}
