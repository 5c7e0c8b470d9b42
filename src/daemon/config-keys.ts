/**
 * Help for config file mistakes: where a key is in the TOML text (its line), and which known setting a
 * misspelt or misplaced key most likely meant.
 */

/** Edit distance (insertions, deletions, substitutions) between two short strings. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

const lastPart = (dotted: string): string => dotted.slice(dotted.lastIndexOf('.') + 1);

/**
 * The known dotted name closest to `name`: a typo ("lazy.span_sise") or the right key in the wrong
 * section ("span_size" at the top) counts; undefined when nothing is close.
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  let best: { name: string; score: number } | undefined;
  for (const candidate of known) {
    // A key in the wrong section costs one edit more than the key's own typos.
    const score = Math.min(editDistance(name, candidate), editDistance(lastPart(name), lastPart(candidate)) + 1);
    if (!best || score < best.score) best = { name: candidate, score };
  }
  const allowed = Math.max(2, Math.floor(lastPart(name).length / 3));
  return best && best.score <= allowed ? best.name : undefined;
}

/** `a . "b"` → `a.b`. */
function normaliseKey(key: string): string {
  return key
    .split('.')
    .map((p) => p.trim().replace(/^(["'])(.*)\1$/, '$2'))
    .join('.');
}

/** The 1-based line of the TOML text on which the dotted key `name` is set (under its table header), if found. */
export function locateKey(text: string, name: string): number | undefined {
  let table = '';
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    const header = /^\s*\[(?!\[)\s*([^\]]+?)\s*\]/.exec(line);
    if (header) {
      table = normaliseKey(header[1]!);
      continue;
    }
    const key = /^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=/.exec(line);
    if (key && (table ? `${table}.${normaliseKey(key[1]!)}` : normaliseKey(key[1]!)) === name) return i + 1;
  }
  return undefined;
}
