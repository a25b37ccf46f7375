#!/usr/bin/env node
// Runs the benchmark workflows of common/asl/bench/workflows with the npm
// package aws-local-stepfunctions, one execution at a time, and prints one
// JSON line per workflow:
//   {"workflow": "pass_3", "transitions_per_sec": 31234.5, ...}
//
// transitions_per_sec is per second of wall time, transitions_per_cpu_sec
// per second of the process's CPU time (what Google Benchmark's rate
// counters use on the C++ side).
//
// A transition is one state entered, counted as the C++ benchmark counts
// *StateEntered history events. The workflows are deterministic, so the
// count per execution is measured once per workflow, before timing, from
// the library's event log (its "StateEntered" events, which include the
// states of Parallel branches), and the execution's result is checked.
// The timed loop then does not read the event log (the library still builds
// every event; reading them through its async generator would only add the
// consumer's cost) and multiplies executions by that count.
//
// The library is not a dependency of the repository: pass the folder it was
// installed into with `npm install --prefix DIR aws-local-stepfunctions`.
//
//   node run_peer.mjs --module-dir DIR [--workflows DIR] [--seconds 5]
//                     [--warmup-seconds 1] [--only NAME[,NAME...]]

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const here = dirname(fileURLToPath(import.meta.url));

function usage(message) {
  if (message) console.error(`run_peer.mjs: ${message}`);
  console.error(
    'usage: node run_peer.mjs --module-dir DIR [--workflows DIR] [--seconds N]\n' +
      '                         [--warmup-seconds N] [--only NAME[,NAME...]]\n' +
      '  --module-dir DIR      folder given to `npm install --prefix` (required)\n' +
      '  --workflows DIR       *.asl.json + input.json (default: common/asl/bench/workflows)\n' +
      '  --seconds N           timed run per workflow (default 5)\n' +
      '  --warmup-seconds N    untimed run first, for the JIT (default 1)\n' +
      '  --only NAMES          comma-separated workflow names (file names without .asl.json)',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const args = {
    moduleDir: process.env.STEPFLOW_PEER_MODULE_DIR || '',
    workflows: resolve(here, '../../../common/asl/bench/workflows'),
    seconds: 5,
    warmupSeconds: 1,
    only: null,
  };
  for (let i = 0; i < argv.length; ++i) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--module-dir': args.moduleDir = value(); break;
      case '--workflows': args.workflows = resolve(value()); break;
      case '--seconds': args.seconds = Number(value()); break;
      case '--warmup-seconds': args.warmupSeconds = Number(value()); break;
      case '--only': args.only = new Set(value().split(',')); break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${flag}`);
    }
  }
  if (!args.moduleDir) usage('--module-dir is required');
  if (!(args.seconds > 0) || !(args.warmupSeconds >= 0)) usage('bad --seconds / --warmup-seconds');
  return args;
}

async function loadPeer(moduleDir) {
  const packageDir = join(moduleDir, 'node_modules', 'aws-local-stepfunctions');
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
  const entry = pkg.exports?.import ?? pkg.module ?? pkg.main;
  const module = await import(pathToFileURL(join(packageDir, entry)).href);
  return { StateMachine: module.StateMachine, version: pkg.version };
}

// One execution whose event log is read: states entered, and the result.
async function calibrate(machine, input) {
  const execution = machine.run(input);
  let entered = 0;
  const counting = (async () => {
    for await (const event of execution.eventLogs) {
      if (event.type === 'StateEntered') ++entered;
    }
  })();
  const result = await execution.result;
  await counting;
  return { entered, result };
}

// Wall time and the process's CPU time (all its threads: with `taskset -c 0`
// the garbage collector's helpers share the one core, so CPU time is the
// core's time this process used, whatever the neighbours do).
async function runFor(machine, input, seconds) {
  const end = performance.now() + seconds * 1000;
  let executions = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  let now = start;
  while (now < end) {
    await machine.run(input).result;
    ++executions;
    now = performance.now();
  }
  const cpu = process.cpuUsage(cpuStart);
  return { executions, elapsed: (now - start) / 1000, cpu: (cpu.user + cpu.system) / 1e6 };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { StateMachine, version } = await loadPeer(args.moduleDir);
  const input = JSON.parse(readFileSync(join(args.workflows, 'input.json'), 'utf8'));
  const names = readdirSync(args.workflows)
    .filter((f) => f.endsWith('.asl.json'))
    .map((f) => f.slice(0, -'.asl.json'.length))
    .filter((n) => !args.only || args.only.has(n))
    .sort();
  if (names.length === 0) usage(`no *.asl.json workflows in ${args.workflows}${args.only ? ' matching --only' : ''}`);
  for (const name of names) {
    const definition = JSON.parse(readFileSync(join(args.workflows, `${name}.asl.json`), 'utf8'));
    // Validated once, as our Definition::Parse runs once outside the loop.
    const machine = new StateMachine(definition);
    const { entered } = await calibrate(machine, input);
    if (entered === 0) throw new Error(`${name}: no StateEntered events`);
    if (args.warmupSeconds > 0) await runFor(machine, input, args.warmupSeconds);
    const { executions, elapsed, cpu } = await runFor(machine, input, args.seconds);
    console.log(
      JSON.stringify({
        workflow: name,
        transitions_per_sec: (executions * entered) / elapsed,
        transitions_per_cpu_sec: (executions * entered) / cpu,
        transitions_per_execution: entered,
        executions,
        seconds: elapsed,
        cpu_seconds: cpu,
        peer: `aws-local-stepfunctions@${version}`,
        node: process.version,
      }),
    );
  }
}

main().catch((error) => {
  console.error(`run_peer.mjs: ${error?.stack ?? error}`);
  process.exit(1);
});
