/**
 * Why a published archive is not trusted: no signature from a trusted key, a signature that does not
 * verify or covers something else, a repository nobody trusts. A FailedPrecondition: the archive may be
 * fine, but this node has no reason to believe it (docs/security.md).
 */
import { FailedPreconditionError } from '../errors';

export class UntrustedError extends FailedPreconditionError {}
