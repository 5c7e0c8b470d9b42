/**
 * Image references, `name[:tag][@digest]`, parsed with Docker's normalisation (distribution's
 * ParseNormalizedNamed): a name without a registry domain lives on docker.io, and a single-component
 * docker.io name gets the `library/` prefix. The first path component is a domain when it contains
 * '.' or ':', is `localhost`, or has upper-case letters.
 *
 *   busybox                      → docker.io/library/busybox:latest
 *   localhost:5000/a/b@sha256:…  → domain localhost:5000, path a/b, digest only
 */
import { validateDigest } from './digest';
import { InvalidArgumentError } from '../errors';

export const DOCKER_HUB_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';

const NAME_TOTAL_LENGTH_MAX = 255;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HEX_ID = /^[a-f0-9]{64}$/;

export class ImageReference {
  constructor(
    /** Registry domain as written in the reference, `host[:port]` (`docker.io` for Docker Hub). */
    readonly domain: string,
    /** Repository path inside the registry, e.g. `library/busybox`. */
    readonly path: string,
    /** Tag; undefined when the reference has only a digest. */
    readonly tag: string | undefined,
    /** Manifest digest pinned by the reference. */
    readonly digest: string | undefined,
  ) {}

  /** `domain/path`. */
  get name(): string {
    return `${this.domain}/${this.path}`;
  }

  /** What to put after `/manifests/`: the digest when pinned, else the tag. */
  get object(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  /** Token scope for this repository (distribution's token authentication spec, docs/spec/auth/scope.md). */
  scope(actions = 'pull'): string {
    return `repository:${this.path}:${actions}`;
  }

  /** The same repository pinned to a digest (the tag is dropped). */
  withDigest(digest: string): ImageReference {
    return new ImageReference(this.domain, this.path, undefined, validateDigest(digest));
  }

  toString(): string {
    return `${this.name}${this.tag !== undefined ? `:${this.tag}` : ''}${this.digest !== undefined ? `@${this.digest}` : ''}`;
  }
}

function invalid(ref: string, reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid reference ${JSON.stringify(ref)}: ${reason}`);
}

/** True when the first path component of a name is a registry domain rather than part of the path. */
function isDomain(component: string): boolean {
  return /[.:]/.test(component) || component === 'localhost' || component.toLowerCase() !== component;
}

/** Parses and normalises an image reference; throws InvalidArgumentError explaining what is wrong. */
export function parseReference(ref: string): ImageReference {
  if (ref === '') throw invalid(ref, 'empty reference');
  if (HEX_ID.test(ref)) throw invalid(ref, 'a 64-character hex string is an image ID, not a repository name');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    try {
      digest = validateDigest(rest.slice(at + 1));
    } catch (err) {
      throw invalid(ref, (err as Error).message);
    }
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `invalid tag ${JSON.stringify(tag)}: expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }
  if (rest === '') throw invalid(ref, 'missing repository name');

  let domain = DOCKER_HUB_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1 && isDomain(rest.slice(0, slash))) {
    domain = rest.slice(0, slash);
    path = rest.slice(slash + 1);
  }
  if (!DOMAIN.test(domain)) throw invalid(ref, `invalid registry domain ${JSON.stringify(domain)}`);
  if (domain === 'index.docker.io') domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;

  if (path.toLowerCase() !== path) throw invalid(ref, 'repository name must be lowercase');
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(ref, `invalid path component ${JSON.stringify(component)}: expected lowercase letters and digits separated by '.', '_', '__' or '-'`);
    }
  }
  if (domain.length + 1 + path.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(ref, `repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return new ImageReference(domain, path, tag, digest);
}
