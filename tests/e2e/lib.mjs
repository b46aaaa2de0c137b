// lib.mjs — helpers the e2e tests share: start a tollgate subcommand and wait for its stdout, stop it, the set of live processes to clean up at `after`.
import { spawn } from 'node:child_process';

export const procs = new Set(); // every process start() spawned that has not exited yet (one set per test file: node --test runs each file in its own process)

// Start a tollgate subcommand (or `cmd`); resolve once stdout matches `re`, with {p, m}.
// Rejects after `ms` or if it exits first, with its stderr (all of it, or the last `tail` characters).
export function start(args, re, { ms = 10000, tail = 0, cmd } = {}) {
  const p = spawn(cmd ?? process.env.TOLLGATE_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const what = cmd ? `${cmd} ${args[0]}` : args[0];
  procs.add(p);
  p.stderrText = '';
  p.stderr.on('data', (d) => { p.stderrText = tail ? (p.stderrText + d).slice(-tail) : p.stderrText + d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${p.stderrText}`)), ms);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(re);
      if (m) { clearTimeout(timer); resolve({ p, m }); }
    });
    p.on('exit', (code, sig) => { clearTimeout(timer); procs.delete(p); reject(new Error(`${what} exited ${code}${sig ? ` ${sig}` : ''}: ${p.stderrText}`)); });
  });
}

// Stop a process start() spawned (SIGKILL unless told); resolve once it has exited.
export function stop(p, sig = 'SIGKILL') {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.removeAllListeners('exit');
    p.on('exit', () => { procs.delete(p); resolve(); });
    p.kill(sig);
  });
}

// For `after`: stop every process still running.
export async function stopAll() {
  for (const p of [...procs]) await stop(p);
}
