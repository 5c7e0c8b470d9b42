/**
 * Patterns of `[lazy] trusted_repositories`: a repository name as clip normalises image references
 * ("registry.example.com/team/app", "docker.io/library/debian"), or a prefix ending in "/*" that matches
 * every repository below it at any depth ("registry.example.com/team/*"). Matching is a string comparison:
 * linear in the name, whatever the pattern.
 */
import { InvalidArgumentError } from '../errors';

/** A repository name: a domain (host, optional port) and one or more lowercase path components. */
const NAME = /^[a-z0-9.-]+(:[0-9]+)?(\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)+$/;
/** A domain alone, for "host/*". */
const DOMAIN = /^[a-z0-9.-]+(:[0-9]+)?$/;

export class RepositoryPattern {
  private constructor(
    readonly text: string,
    private readonly prefix: string | undefined,
  ) {}

  static parse(text: string): RepositoryPattern {
    const bad = (why: string): never => {
      throw new InvalidArgumentError(`trusted repository ${JSON.stringify(text)}: ${why} (write "host/path" or "host/path/*")`);
    };
    if (text.includes('://')) bad('no scheme');
    if (text.endsWith('/*')) {
      const base = text.slice(0, -2);
      if (!NAME.test(base) && !DOMAIN.test(base)) bad('not a repository or registry name');
      if (DOMAIN.test(base) && !base.includes('.') && !base.includes(':') && base !== 'localhost') bad('the first component must be a registry host');
      return new RepositoryPattern(text, `${base}/`);
    }
    if (text.includes('*')) bad('"*" is only allowed as the last path component');
    if (!NAME.test(text)) bad('not a repository name');
    return new RepositoryPattern(text, undefined);
  }

  /** Whether the repository `name` (ImageReference.name) is covered. */
  matches(name: string): boolean {
    return this.prefix === undefined ? name === this.text : name.startsWith(this.prefix) && name.length > this.prefix.length;
  }
}
