/**
 * Whom this node trusts to describe a layer (docs/security.md). An archive is used only with a provenance
 * the policy allows:
 *
 *   local       indexed on this node from the layer blob, whose digest it checked: always allowed
 *   signed      published with a signature from a key in `[lazy] trusted_keys`
 *   repository  published in a repository matching `[lazy] trusted_repositories`
 *
 * With neither setting, published archives are not used at all. The policy is checked again whenever a
 * stored archive is used, so taking a key or a repository out of the config stops its archives being used.
 */
import { UntrustedError } from './errors';
import { verifyStatement, type VerifiedStatement } from './archive-statement';
import { RepositoryPattern } from './repository-pattern';
import { loadPublicKey, type PublicKey } from './signing-keys';

export type ArchiveProvenance =
  | { source: 'local' }
  | { source: 'signed'; keyId: string }
  | { source: 'repository'; repository: string };

export const LOCAL: ArchiveProvenance = { source: 'local' };

export function describeProvenance(p: ArchiveProvenance): string {
  switch (p.source) {
    case 'local':
      return 'indexed on this node';
    case 'signed':
      return `signed by ${p.keyId}`;
    case 'repository':
      return `published in trusted repository ${p.repository}`;
  }
}

export interface TrustSettings {
  /** PEM public key files. */
  trustedKeys: readonly string[];
  /** RepositoryPattern texts. */
  trustedRepositories: readonly string[];
}

export class TrustPolicy {
  constructor(
    readonly keys: readonly PublicKey[],
    readonly repositories: readonly RepositoryPattern[],
  ) {}

  /** Trusts nothing published: every archive is indexed locally. */
  static localOnly(): TrustPolicy {
    return new TrustPolicy([], []);
  }

  /** Loads the keys and parses the patterns; throws InvalidArgumentError naming the bad entry. */
  static async load(settings: TrustSettings): Promise<TrustPolicy> {
    const keys = await Promise.all(settings.trustedKeys.map((file) => loadPublicKey(file)));
    return new TrustPolicy(keys, settings.trustedRepositories.map((p) => RepositoryPattern.parse(p)));
  }

  /** Whether any published archive could be trusted (else they are not even looked for). */
  get trustsPublished(): boolean {
    return this.keys.length > 0 || this.repositories.length > 0;
  }

  /** The configured pattern that trusts the repository `name`, if any. */
  trustedRepository(name: string): RepositoryPattern | undefined {
    return this.repositories.find((p) => p.matches(name));
  }

  /** Whether an archive of this provenance may be used now. */
  allows(p: ArchiveProvenance): boolean {
    switch (p.source) {
      case 'local':
        return true;
      case 'signed':
        return this.keys.some((k) => k.keyId === p.keyId);
      case 'repository':
        return this.repositories.some((r) => r.text === p.repository);
    }
  }

  /** Verifies a signature envelope against the trusted keys (UntrustedError when none is configured or none verifies). */
  verify(envelope: string): VerifiedStatement {
    if (this.keys.length === 0) throw new UntrustedError('no trusted key is configured');
    return verifyStatement(envelope, this.keys);
  }
}
