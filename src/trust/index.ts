/**
 * Trust in published clip archives: who may describe a layer to this node, and how that is checked
 * (docs/security.md). Signatures are DSSE envelopes over an archive statement, with ed25519 keys.
 */
export { UntrustedError } from './errors';
export { signStatement, verifyStatement, STATEMENT_PAYLOAD_TYPE } from './archive-statement';
export type { ArchiveStatement, VerifiedStatement } from './archive-statement';
export { RepositoryPattern } from './repository-pattern';
export { keyIdOf, loadPublicKey, loadSigningKey, parsePublicKey, parseSigningKey } from './signing-keys';
export type { PublicKey, SigningKey } from './signing-keys';
export { LOCAL, TrustPolicy, describeProvenance } from './trust-policy';
export type { ArchiveProvenance, TrustSettings } from './trust-policy';
