/**
 * The version and git commit this copy of clip was built from: package.json's version and the commit
 * scripts/write-build-info.js recorded in dist/build-info.json at build time ("unknown" without it).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface BuildInfo {
  version: string;
  commit: string;
}

let cached: BuildInfo | undefined;

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Compiled, this file is dist/src/build-info.js: the package root is two levels up. */
export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const root = path.resolve(__dirname, '..', '..');
  const recorded = readJson(path.join(root, 'dist', 'build-info.json'));
  const pkg = readJson(path.join(root, 'package.json'));
  const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  cached = { version: text(pkg?.['version']) ?? text(recorded?.['version']) ?? 'unknown', commit: text(recorded?.['commit']) ?? 'unknown' };
  return cached;
}

/** "0.1.0 (commit 0123456789ab)". */
export function versionLine(): string {
  const { version, commit } = buildInfo();
  return `${version} (commit ${commit})`;
}
