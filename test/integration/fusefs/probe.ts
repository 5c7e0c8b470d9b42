/**
 * Runs probe.py in a child process. The tests serve their FUSE mounts from the test process itself, so
 * they look at the mounts only from child processes: a synchronous call from this process on its own
 * mount would wait for itself forever.
 */
import path from 'node:path';
import { REPO_ROOT, run } from '../../helpers/processes';

export const PYTHON = '/usr/bin/python3';
const PROBE = path.join(REPO_ROOT, 'test', 'integration', 'fusefs', 'probe.py');

export type ProbeResult<T = unknown> = { ok: T; errno?: undefined } | { ok?: undefined; errno: string };

export async function probe(ops: unknown[][], timeoutMs = 60_000): Promise<ProbeResult<any>[]> {
  const r = await run(PYTHON, [PROBE, JSON.stringify(ops)], { timeoutMs });
  if (r.code !== 0) throw new Error(`probe.py exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeResult[];
}

/** One operation whose success is expected: its value. */
export async function probeOk<T = any>(op: string, ...args: unknown[]): Promise<T> {
  const [result] = await probe([[op, ...args]]);
  if (result.errno) throw new Error(`${op} ${args.join(' ')}: ${result.errno}`);
  return result.ok as T;
}

/** One operation whose failure is expected: its errno name ("OK" if it succeeded). */
export async function probeErrno(op: string, ...args: unknown[]): Promise<string> {
  const [result] = await probe([[op, ...args]]);
  return result.errno ?? 'OK';
}
