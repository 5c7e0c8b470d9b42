/**
 * Why auto-publishing an image's archives failed, in words an operator can act on: a bounded reason (also
 * a metrics label, the same classes as a lazy-pull fallback) and the fix, for the one log line per
 * repository (archive-publisher.ts).
 */
import { NotFoundError } from '../errors';
import { RegistryRequestError } from '../registry';
import { type FallbackReason, fallbackReason } from '../snapshotter/fallback-reason';

/** The reason class of a failed publish. */
export function publishFailureReason(err: unknown): FallbackReason {
  const reason = fallbackReason(err);
  if (reason !== 'other') return reason;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    // 405: the registry has no upload endpoint (read-only, or a pull-through mirror).
    if (e instanceof RegistryRequestError && e.status === 405) return 'unsupported';
    // No hosts.toml endpoint of the registry has the "push" capability.
    if (e instanceof NotFoundError) return 'not-found';
  }
  return 'other';
}

/** Failures worth another attempt later (the registry may come back). */
export function isTransient(reason: FallbackReason): boolean {
  return reason === 'unreachable' || reason === 'timeout';
}

/** What to do about a publish to repository `repository` on `host` that failed for `reason`. */
export function publishFailureHint(reason: FallbackReason, host: string, repository: string): string | undefined {
  switch (reason) {
    case 'auth':
      return (
        `${host} refused to let this node push to ${repository}: give clip credentials that may push there ` +
        `([registry] docker_config, or the credential helper it names); the pull secrets kubelet passes through ` +
        `the CRI keychain are not used for pushes`
      );
    case 'unsupported':
      return `${host} does not accept uploads (a read-only registry or a mirror): let nodes pull this image from a registry that accepts pushes, or set [lazy] auto_publish = false`;
    case 'not-found':
      return `no endpoint of ${host} accepts pushes to ${repository}: give the host the "push" capability in its hosts.toml ([registry] hosts_dir), or check the repository`;
    case 'tls':
    case 'unreachable':
    case 'timeout':
      return `${host} could not be reached to publish; clip tries once more later and again whenever it indexes a layer of the image`;
    case 'digest-mismatch':
      return `${host} stored other bytes than clip sent: check the registry`;
    case 'other':
      return undefined;
  }
}
