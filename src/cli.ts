// The command line: scaffold (default), generate, run, list, smoke.
// Modules load when their command runs: `generate` should not pay for the harness.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { distance } from 'fastest-levenshtein';
import { packageRoot } from './targets.js';

const HELP_HINT = '(see create-sse-server --help)';

/** A bare word one or two typos away from a command (`lsit`): the user meant the command. */
export function commandTypo(word: string, commands: string[]): string | undefined {
  if (word.includes('/') || word.includes('.')) return undefined;
  const near = commands.map((c) => [c, distance(word.toLowerCase(), c)] as const).filter(([c, d]) => d > 0 && d <= (c.length <= 4 ? 1 : 2) + (word.length > 3 && [...word].sort().join('') === [...c].sort().join('') ? 1 : 0));
  near.sort((a, b) => a[1] - b[1]);
  return near[0]?.[0];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
function portNumber(value: string) {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError('must be a port number (1-65535)');
  return port;
}

function positiveInt(value: string, name: string) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new InvalidArgumentError(`${name} must be a whole number from 1 to 9`);
  return n;
}

export async function listRows() {
  const { loadTargets } = await import('./targets.js');
  const { checkToolchain, installHint, toolName } = await import('./toolchain.js');
  return Promise.all(
    loadTargets().map(async (t) => {
      const toolchain = await checkToolchain(t);
      return {
        id: t.id,
        language: t.language,
        framework: t.framework,
        port: 3000 + t.portOffset,
        level: t.level,
        ...(t.levelNote ? { levelNote: t.levelNote } : {}),
        toolchain: toolchain.every((s) => s.found) ? 'found' : 'missing',
        missing: toolchain.filter((s) => !s.found).map((s) => toolName(s)),
        install: toolchain.filter((s) => !s.found).map((s) => installHint(s)),
        lint: t.lint?.steps.map((s) => s.run.join(' ').split('\n')[0]) ?? [],
        ...(t.lint?.unavailable ? { lintUnavailable: t.lint.unavailable } : {}),
        redis: t.broker?.redis ?? { unsupported: 'its template has no Redis broker' },
      };
    }),
  );
}

export function program(): Command {
  const { version } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8'));
  const cli = new Command('create-sse-server')
    .description('Scaffold a Server-Sent Events server from one event spec, in the language you pick')
    .version(version, '-v, --version', 'print the version')
    .argument('[dir]', 'folder to create the project in')
    .option('-t, --target <id>', 'language/framework (see `list`)')
    .option('-p, --port <port>', 'default port of the server', portNumber)
    .option('--name <name>', 'project name (default: from the folder name)')
    .option('--spec <file>', 'event spec (YAML or JSON); default: the example spec')
    .option('-y, --yes', 'ask nothing: take flags and defaults')
    .option('--force', 'replace the contents of a non-empty folder (.git is kept)')
    .showHelpAfterError(HELP_HINT)
    .enablePositionalOptions()
    .action(async (dir: string | undefined, opts) => {
      const { create, UsageError } = await import('./create.js');
      if (dir !== undefined) {
        const { existsSync } = await import('node:fs');
        const meant = existsSync(dir) ? undefined : commandTypo(dir, [...cli.commands.map((c) => c.name()), 'help']);
        if (meant) throw new UsageError(`"${dir}" is not a command: did you mean \`${meant}\`? (to create a folder named ${dir}, pass ./${dir}) ${HELP_HINT}`);
      }
      const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY) && !process.env.CI;
      const result = await create(dir, { ...opts, interactive });
      console.log(`\nCreated ${result.target.language} · ${result.target.framework} server in ${result.dir}\n\nNext:`);
      for (const step of result.nextSteps) console.log(`  ${step}`);
      if (result.warning) console.error(`warning: ${result.warning}`);
    });

  cli.helpCommand('help [command]', 'show help for a command');

  cli
    .command('generate')
    .description('render targets from a spec into OUT/<id>/ (each on spec port + its offset)')
    .requiredOption('--spec <file>', 'event spec (YAML or JSON)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--target <id>', 'only this target (repeatable)', collect)
    .option('--check', 'write nothing; exit 1 and list the files that differ')
    .option('--force', 'write into folders that were not generated before')
    .addOption(new Option('--variant <name>', 'render the harness variant of the spec (for template authors)').choices(['spec', 'hardened']).default('spec'))
    .action(async (opts) => {
      const { loadSpec } = await import('./spec.js');
      const { generate } = await import('./generate.js');
      const { variantSpec } = await import('./smoke/variants.js');
      const spec = variantSpec(await loadSpec(opts.spec), opts.variant);
      const { targets, differences } = await generate(spec, opts.out, { targets: opts.target, check: opts.check, force: opts.force, report: (line) => console.error(`warning: ${line}`) });
      if (opts.check) {
        if (differences.length) {
          console.error(`${opts.out} is out of date (run generate without --check):`);
          for (const d of differences) console.error(`  ${d.problem.padEnd(7)} ${d.path}`);
          if (differences.some((d) => d.problem === 'extra')) console.error(`(extra: a file no template writes; remove it, or keep it out with the target's .gitignore)`);
          process.exitCode = 1;
        } else console.log(`${opts.out}: ${targets.length} targets up to date`);
      } else console.log(`generated ${targets.length} targets into ${opts.out}: ${targets.map((t) => t.id).join(', ')}`);
    });

  cli
    .command('run')
    .description('install, build and start a generated project (PORT and HOST are honoured)')
    .argument('<dir>', 'a folder made by create-sse-server or generate')
    .action(async (dir: string) => {
      const { existsSync } = await import('node:fs');
      const { RunError, runCommand } = await import('./run.js');
      if (!existsSync(dir)) throw new RunError(`${dir} does not exist; create a project first (create-sse-server ${dir} --target ID)`);
      process.exitCode = await runCommand(dir);
    });

  cli
    .command('list')
    .description('targets, their verified level, and whether their toolchain is here')
    .option('--json', 'as JSON')
    .action(async (opts) => {
      const rows = await listRows();
      if (opts.json) return console.log(JSON.stringify(rows, null, 2));
      console.log(formatList(rows));
    });

  cli
    .command('up')
    .description('build and start every runs target of a generated folder, each on its own port (Ctrl-C stops them all)')
    .argument('[dir]', 'a folder made by generate', 'generated')
    .option('--target <id>', 'only this target (repeatable)', collect)
    .option('--port-base <port>', 'each target listens on this plus its offset', portNumber, 3000)
    .option('--host <host>', 'address the servers listen on', '127.0.0.1')
    .option('--instances <n>', 'instances per target (the k-th listens on its port + 100 k)', (v: string) => positiveInt(v, '--instances'), 1)
    .option('--broker <kind>', 'memory (as generated) or redis: a local Redis, each target rendered again with broker: redis (docs/broker.md)', 'memory')
    .option('--spec <file>', 'with --broker redis: the spec to render (default: the example spec)')
    .action(async (dir: string, opts) => {
      const { upCommand } = await import('./up.js');
      process.exitCode = await upCommand(dir, opts);
    });

  cli
    .command('demo')
    .description('`up`, plus a live page with a card per target (served on its own origin)')
    .argument('[dir]', 'a folder made by generate', 'generated')
    .option('--target <id>', 'only this target (repeatable)', collect)
    .option('--port <port>', 'port of the demo page', portNumber, 5173)
    .option('--port-base <port>', 'each target listens on this plus its offset', portNumber, 3000)
    .action(async (dir: string, opts) => {
      const { demoCommand } = await import('./demo.js');
      process.exitCode = await demoCommand(dir, opts);
    });

  cli
    .command('lint')
    .description("run each target's own formatter and linters over its renders (the spec, every option on, and broker: redis where it has one)")
    .argument('[ids...]', 'target ids (default: every target whose manifest names linters)')
    .option('--spec <file>', 'spec to render (default: the example spec)')
    .option('--require-toolchains', 'a missing linter fails instead of skipping')
    .option('--work <dir>', 'where targets are rendered and linted (kept for warm runs)')
    .action(async (ids: string[], opts) => {
      const { lintCommand } = await import('./lint-command.js');
      process.exitCode = await lintCommand(ids, opts);
    });

  cli
    .command('smoke')
    .description('render, build, start and check targets against the SSE contract (C1-C16)')
    .argument('[ids...]', 'target ids (default: every target at level runs)')
    .option('--all', 'every target')
    .option('--spec <file>', 'spec to render (default: the example spec)')
    .option('--json <file>', 'also write the report as JSON')
    .option('--require-toolchains', 'a missing toolchain fails instead of skipping')
    .option('--browser', 'also check with a real Chromium EventSource on another origin (B1)')
    .option('--broker', 'instead: two instances of each target with broker: redis on one Redis (R1-R7, docs/broker.md)')
    .addOption(new Option('--work <dir>', 'where targets are rendered and built (kept for warm rebuilds)'))
    .action(async (ids: string[], opts) => {
      const { smokeCommand, brokerCommand } = await import('./smoke/command.js');
      process.exitCode = opts.broker ? await brokerCommand(ids, opts) : await smokeCommand(ids, opts);
    });

  cli
    .command('bench')
    .description('fan-out benchmark: hold N streams per target, publish at a steady rate, measure latency, loss, memory and CPU (issue 13)')
    .argument('[ids...]', 'target ids, and `centrifugo` for the reference hub')
    .option('--all', 'every runs target in the folder, and the hub')
    .option('--clients <n>', 'concurrent streams per target (default 1000)', (v) => Number(v))
    .option('--publish-rate <r>', 'publishes per second (default 10)', (v) => Number(v))
    .option('--secs <s>', 'seconds of publishing (default 10)', (v) => Number(v))
    .option('--procs <n>', 'client processes the streams are spread over (default 2)', (v) => Number(v))
    .option('--connect-timeout <s>', 'seconds allowed for all streams to open (default 60)', (v) => Number(v))
    .option('--drain <s>', 'seconds to wait for late events after the last publish (default 10)', (v) => Number(v))
    .option('--gap <s>', 'seconds to let the machine settle between targets (default 0)', (v) => Number(v))
    .option('--runs <k>', 'passes over every target; the table and chart give each one\'s medians (default 1)', (v) => Number(v))
    .option('--broker <kind>', 'redis: each target rendered with broker: redis, on a Redis the bench starts (what the broker costs)')
    .option('--json <file>', 'write the results as JSON (rewritten after each target)')
    .option('--svg <file>', 'write a chart: p99 latency and memory per stream by target')
    .option('--markdown', 'also print the table as Markdown')
    .option('--dir <dir>', 'the generated folder', 'generated')
    .option('--work <dir>', 'where targets are copied and built (default ~/.cache/create-sse-server/bench-work)')
    .option('--no-work', 'build in the generated folder itself')
    .option('--centrifugo <bin>', 'a Centrifugo binary (default: built from its Go module into the cache)')
    .option('--from <file>', 'run nothing: print the table (and --svg, --markdown) from a JSON the bench wrote')
    .option('--title <text>', 'chart title')
    .action(async (ids: string[], opts) => {
      const { benchCommand } = await import('./bench/command.js');
      process.exitCode = await benchCommand(ids, opts);
    });

  return cli;
}

type Row = Awaited<ReturnType<typeof listRows>>[number];

/** `list`: a header, columns as wide as their widest cell, and what to install when a toolchain is missing. */
export function formatList(rows: Row[]): string {
  const header = ['target', 'language', 'framework', 'port', 'verified', 'here'];
  const table = rows.map((r) => [r.id, r.language, r.framework, String(r.port), r.level, r.toolchain === 'found' ? 'ready' : 'toolchain missing']);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  const out = [line(header)];
  rows.forEach((r, i) => {
    out.push(line(table[i]));
    r.missing.forEach((name, j) => out.push(`    needs ${name}: ${r.install[j]}`));
    if (r.lintUnavailable) out.push(`    lint not run here: ${r.lintUnavailable}`);
  });
  const runs = rows.filter((r) => r.level === 'runs');
  const missing = runs.filter((r) => r.toolchain !== 'found').length;
  out.push('', `verified: how far each target is proven on the project's CI (runs: built, started and checked C1-C16; parses: its toolchain cannot be installed there, a real parser checks the sources).`);
  out.push(`here: ${runs.length - missing} of ${runs.length} targets at level runs can be built on this machine${missing ? '; `npm run toolchains` in a clone installs the rest on Debian' : ''}.`);
  return out.join('\n');
}

/** Errors that explain themselves: printed without a stack trace. */
const KNOWN_ERRORS = new Set(['SpecError', 'SpecFileError', 'UsageError', 'UnknownTargetError', 'DirectoryNotEmptyError', 'RunError', 'BrokerUnsupported', 'WriteError', 'LockedError', 'Declined']);

export async function main(argv = process.argv) {
  try {
    const cli = program();
    if (argv[2] === 'help') {
      // `help`, `help smoke`, `help --target x --yes`: help, never a folder named help.
      const name = argv.slice(3).find((a) => !a.startsWith('-'));
      const sub = cli.commands.find((c) => c.name() === name);
      (sub ?? cli).outputHelp();
      return;
    }
    await cli.parseAsync(argv);
  } catch (error) {
    const { name, message } = error as Error;
    if (name === 'Cancelled') {
      console.error(message);
      process.exitCode = 130;
    } else if (KNOWN_ERRORS.has(name)) {
      console.error(`error: ${message}`);
      process.exitCode = 1;
    } else {
      // Unexpected: still one line; the stack only when asked for.
      const code = (error as NodeJS.ErrnoException).code;
      console.error(`error: ${code && !message.includes(code) ? `${code}: ` : ''}${message.split('\n')[0]}`);
      if (process.env.CREATE_SSE_SERVER_DEBUG) console.error((error as Error).stack);
      else console.error('(set CREATE_SSE_SERVER_DEBUG=1 for the stack trace)');
      process.exitCode = 1;
    }
  }
}
