#!/usr/bin/env node
// Prints the interpreter-vs-peer table from the files interpreter_vs_peer.sh
// collects: per round, Google Benchmark's JSON (ours-N.json) and
// run_peer.mjs's JSON lines (peer-N.jsonl).
//
//   node report.mjs DIR ROUNDS TARGET_RATIO
//
// Per workflow and round: our and the peer's transitions per CPU-second
// (the per-core figure: it leaves out time a busy neighbour took from the
// core), their ratio, and the same per wall-clock second; then the spread
// over rounds (min..max), and ns per transition against ns per JSON
// parse + serialize of the same input.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, roundsText, targetText] = process.argv.slice(2);
if (!dir || !roundsText) {
  console.error('usage: node report.mjs DIR ROUNDS [TARGET_RATIO]');
  process.exit(2);
}
const rounds = Number(roundsText);
const target = Number(targetText || 30);

const toNs = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 };

// ours[round][workflow] = {cpu, wall, perExecution}; parse[round] = ns (CPU).
const ours = [];
const parse = [];
const peer = [];
for (let r = 1; r <= rounds; ++r) {
  const gb = JSON.parse(readFileSync(join(dir, `ours-${r}.json`), 'utf8'));
  const byWorkflow = {};
  for (const b of gb.benchmarks) {
    if (b.error_occurred) throw new Error(`${b.name}: ${b.error_message}`);
    const unit = toNs[b.time_unit ?? 'ns'];
    if (b.name.startsWith('BM_Execution/')) {
      const perExecution = b.transitions_per_execution;
      byWorkflow[b.name.slice('BM_Execution/'.length)] = {
        cpu: b.state_transitions_per_second,
        wall: perExecution / ((b.real_time * unit) / 1e9),
        perExecution,
      };
    } else if (b.name === 'BM_JsonParseSerialize') {
      parse.push(b.cpu_time * unit);
    }
  }
  ours.push(byWorkflow);
  const lines = readFileSync(join(dir, `peer-${r}.jsonl`), 'utf8').trim().split('\n');
  const peerByWorkflow = {};
  for (const line of lines) {
    const p = JSON.parse(line);
    peerByWorkflow[p.workflow] = {
      cpu: p.transitions_per_cpu_sec,
      wall: p.transitions_per_sec,
      perExecution: p.transitions_per_execution,
      peer: p.peer,
      node: p.node,
    };
  }
  peer.push(peerByWorkflow);
}

const k = (x) => (x >= 1e5 ? `${(x / 1e3).toFixed(0)}k` : `${(x / 1e3).toFixed(1)}k`);
const range = (xs, f) => {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return xs.length > 1 ? `${f(lo)}..${f(hi)}` : f(lo);
};
const x = (v) => `${v.toFixed(1)}x`;
const pad = (s, n) => String(s).padEnd(n);

const workflows = Object.keys(ours[0]).sort();
const peerName = Object.values(peer[0])[0];
console.log(`peer: ${peerName.peer} on node ${peerName.node}; both pinned to CPU 0 (taskset -c 0)`);
console.log('transitions = states entered; /cpu-s = per second of CPU time on that core\n');
console.log(
  pad('workflow', 16) + pad('round', 7) + pad('ours/cpu-s', 12) + pad('peer/cpu-s', 12) +
    pad('ratio', 9) + pad('ours/wall-s', 13) + pad('peer/wall-s', 13) + 'ratio(wall)',
);
const summary = [];
for (const w of workflows) {
  const ratios = [];
  const wallRatios = [];
  for (let r = 0; r < rounds; ++r) {
    const o = ours[r][w];
    const p = peer[r][w];
    if (!p) throw new Error(`peer has no result for ${w}`);
    if (p.perExecution !== o.perExecution) {
      throw new Error(`${w}: ${o.perExecution} states entered here, ${p.perExecution} in the peer`);
    }
    ratios.push(o.cpu / p.cpu);
    wallRatios.push(o.wall / p.wall);
    console.log(
      pad(w, 16) + pad(r + 1, 7) + pad(k(o.cpu), 12) + pad(k(p.cpu), 12) +
        pad(x(o.cpu / p.cpu), 9) + pad(k(o.wall), 13) + pad(k(p.wall), 13) + x(o.wall / p.wall),
    );
  }
  summary.push({
    w,
    ours: ours.map((o) => o[w].cpu),
    peer: peer.map((p) => p[w].cpu),
    ratios,
    wallRatios,
    perExecution: ours[0][w].perExecution,
  });
}

console.log(`\nspread over ${rounds} round(s), min..max (CPU time):`);
for (const s of summary) {
  console.log(
    `  ${pad(s.w, 16)} ours ${pad(range(s.ours, k), 14)} peer ${pad(range(s.peer, k), 14)}` +
      ` ratio ${pad(range(s.ratios, x), 14)} (wall ${range(s.wallRatios, x)})` +
      `  ${Math.min(...s.ratios) >= target ? 'meets' : 'BELOW'} ${target}x`,
  );
}

console.log('\nns per transition (ours, CPU) vs one JSON parse + serialize of input.json:');
console.log(`  parse+serialize ${range(parse, (v) => `${v.toFixed(0)} ns`)}`);
for (const s of summary) {
  const ns = s.ours.map((v) => 1e9 / v);
  const multiples = ns.map((v, r) => v / parse[r]);
  console.log(
    `  ${pad(s.w, 16)} ${pad(range(ns, (v) => `${v.toFixed(0)} ns`), 20)}` +
      ` = ${range(multiples, (v) => v.toFixed(1))} parse+serialize per transition`,
  );
}
