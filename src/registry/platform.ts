/**
 * Platforms (`os/architecture[/variant]`) and choosing an index entry for one, after containerd's
 * `platforms` package: names are normalised to OCI's (x86_64 → amd64, aarch64 → arm64, arm v7 …),
 * and a platform also accepts older compatible variants (arm/v7 runs v6 and v5 images), preferring
 * the closest one.
 */
import { InvalidArgumentError } from '../errors';
import { NoMatchingPlatformError } from './registry-errors';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const ARCH_ALIASES: Record<string, string> = {
  x64: 'amd64',
  x86_64: 'amd64',
  x86: '386',
  ia32: '386',
  i386: '386',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  ppc64: 'ppc64le',
  mips64el: 'mips64le',
  mipsel: 'mipsle',
};

/** Normalises architecture and variant names the way containerd does. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  const rawArch = p.architecture.toLowerCase();
  const architecture = ARCH_ALIASES[rawArch] ?? rawArch;
  let variant = p.variant?.toLowerCase() || undefined;
  if (rawArch === 'armhf' && variant === undefined) variant = 'v7';
  if (rawArch === 'armel' && variant === undefined) variant = 'v6';
  if (architecture === 'arm') variant = variant === undefined ? 'v7' : /^\d+$/.test(variant) ? `v${variant}` : variant;
  if (architecture === 'arm64' && (variant === '8' || variant === 'v8')) variant = undefined;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** Parses `os/arch[/variant]`; a lone `arch` or `os` is not accepted, to keep intent explicit. */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(text)}: expected os/architecture[/variant]`);
  }
  return normalizePlatform({ os: parts[0]!, architecture: parts[1]!, variant: parts[2] });
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x).join('/');
}

/** The platform of this process: linux plus Node's architecture mapped to OCI names. */
export function hostPlatform(arch: string = process.arch, armVersion?: string): Platform {
  const variant = arch === 'arm' ? (armVersion ?? armVersionOfNode()) : undefined;
  return normalizePlatform({ os: 'linux', architecture: arch, variant });
}

function armVersionOfNode(): string | undefined {
  const v = (process.config.variables as Record<string, unknown>)['arm_version'];
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

/** Variants `wanted` can run, best first (arm/v7 → v7, v6, v5). */
function compatibleVariants(wanted: Platform): Array<string | undefined> {
  if (wanted.architecture === 'arm') {
    const n = Number((wanted.variant ?? 'v7').slice(1));
    const out: Array<string | undefined> = [];
    for (let v = n; v >= 5; v--) out.push(`v${v}`);
    return out.length > 0 ? out : [wanted.variant];
  }
  if (wanted.architecture === 'amd64' && wanted.variant !== undefined) {
    const n = Number(wanted.variant.slice(1));
    const out: Array<string | undefined> = [];
    for (let v = n; v >= 2; v--) out.push(`v${v}`);
    return [...out, undefined];
  }
  return [wanted.variant];
}

/**
 * How well `candidate` fits `wanted`: 0 is an exact match, higher numbers are older compatible
 * variants, undefined means it cannot run.
 */
export function platformRank(wanted: Platform, candidate: Platform): number | undefined {
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return undefined;
  const rank = compatibleVariants(w).indexOf(c.variant);
  return rank === -1 ? undefined : rank;
}

/** A descriptor from an index: only the fields platform selection needs. */
export interface PlatformEntry {
  platform?: { os?: string; architecture?: string; variant?: string };
}

/**
 * Picks the index entry that best fits `wanted`: the best rank wins, index order breaks ties.
 * Entries without a platform are taken only when no entry matches (containerd accepts them).
 */
export function selectPlatformEntry<T extends PlatformEntry>(entries: readonly T[], wanted: Platform): T {
  let best: T | undefined;
  let bestRank = Infinity;
  let unlabelled: T | undefined;
  for (const entry of entries) {
    const p = entry.platform;
    if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string') {
      unlabelled ??= entry;
      continue;
    }
    const rank = platformRank(wanted, { os: p.os, architecture: p.architecture, variant: p.variant });
    if (rank !== undefined && rank < bestRank) {
      best = entry;
      bestRank = rank;
    }
  }
  const chosen = best ?? unlabelled;
  if (chosen) return chosen;
  const available = entries.map((e) => (e.platform ? formatPlatform(e.platform as Platform) : '(none)')).join(', ');
  throw new NoMatchingPlatformError(`no manifest for platform ${formatPlatform(normalizePlatform(wanted))} (index has: ${available || 'no entries'})`);
}
