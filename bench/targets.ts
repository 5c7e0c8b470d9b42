/**
 * The start-up targets the benchmark is held to, each computed from one run's results (medians), for the
 * "Targets" table of docs/benchmarks.md. A target whose rows did not run is listed as not measured.
 */
import { median } from './median';
import type { ColdStartCase, Results } from './results';

export interface TargetRow {
  target: string;
  /** The measured value, as shown. */
  measured: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
}

const PUBLISHED = 'clip, published archives';
const INDEXING = 'clip, indexing on Prepare';
const START_UP_IMAGES = ['python', 'node'];

function find(r: Results, profile: string, image: string, row: string): ColdStartCase | undefined {
  const c = r.coldStart.find((x) => x.profile === profile && x.image === image && x.row === row);
  return c && c.samples.length && !c.error ? c : undefined;
}

/** Median total of a row divided by overlayfs's on the same profile and image. */
function ratio(r: Results, profile: string, image: string, row: string): number | undefined {
  const c = find(r, profile, image, row);
  const o = find(r, profile, image, 'overlayfs');
  if (!c || !o) return undefined;
  return median(c.samples.map((s) => s.totalMs)) / median(o.samples.map((s) => s.totalMs));
}

function row(target: string, value: number | undefined, limit: number, format: (x: number) => string, atMost = true): TargetRow {
  if (value === undefined || !Number.isFinite(value)) return { target, measured: 'not measured', met: undefined };
  return { target, measured: format(value), met: atMost ? value <= limit : value >= limit };
}

const times = (x: number): string => `${x.toFixed(2)}×`;

export function targetRows(r: Results): TargetRow[] {
  const out: TargetRow[] = [];
  const images = [...new Set(r.coldStart.map((c) => c.image))];
  for (const image of START_UP_IMAGES) {
    out.push(row(`${image}, published archives, limited link: total ≤ 0.25× overlayfs`, ratio(r, 'limited', image, PUBLISHED), 0.25, times));
  }
  for (const image of START_UP_IMAGES) {
    const read = r.images[image]?.startupRead;
    for (const profile of Object.keys(r.profiles)) {
      const c = find(r, profile, image, PUBLISHED);
      const value = c && read ? median(c.samples.map((s) => s.registryBytes)) / read.gzipBytes : undefined;
      out.push(row(`${image}, published archives, ${profile}: registry bytes ≤ 1.5× the gzip size of the data read`, value, 1.5, times));
    }
  }
  for (const image of images) {
    const c = find(r, 'loopback', image, PUBLISHED);
    const pull = c ? median(c.samples.map((s) => s.pullMs)) / 1000 : undefined;
    out.push(row(`${image}, published archives, loopback: lazy pull ≤ 0.35 s`, pull, 0.35, (x) => `${x.toFixed(2)} s`));
  }
  for (const image of images) {
    for (const clipRow of [INDEXING, PUBLISHED]) {
      out.push(row(`${image}, ${clipRow}, loopback: total ≤ 0.6× overlayfs`, ratio(r, 'loopback', image, clipRow), 0.6, times));
    }
  }
  for (const profile of Object.keys(r.profiles)) {
    for (const image of images) {
      out.push(row(`${image}, ${INDEXING}, ${profile}: total ≤ 1.0× overlayfs`, ratio(r, profile, image, INDEXING), 1.0, times));
    }
  }
  const cold = r.fuse?.seq.clip.map((s) => s.cold) ?? [];
  out.push(row('cold sequential read through FUSE, loopback: ≥ 300 MB/s', cold.length ? median(cold) : undefined, 300, (x) => `${x.toFixed(0)} MB/s`, false));
  return out;
}
