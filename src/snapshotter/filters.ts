/**
 * containerd's filter syntax, as used by the Snapshots List RPC.
 *
 *   filter    := selector ("," selector)*          selectors in one filter are ANDed
 *   selector  := fieldpath [operator value]         a bare fieldpath means "field is present"
 *   fieldpath := field ("." field)*
 *   field     := quoted | [A-Za-z_][A-Za-z0-9_]*
 *   operator  := "==" | "!=" | "~="                 "~=" matches a regular expression (RE2 syntax)
 *   value     := quoted | [^\s,]+
 *   quoted    := a string between '"' (with Go-style backslash escapes), or between '/' or '|' (raw, where
 *                 only \/ or \| escapes the quote: convenient for regular expressions)
 *
 * A List request carries several filters; a snapshot matches when any one of them matches.
 * Syntax errors are InvalidArgumentErrors naming the position.
 *
 * Patterns come from clients, so they run on RE2JS (a JavaScript port of RE2): RE2 syntax, as containerd's
 * Go regexp uses, and matching in time linear in the input, where JavaScript's backtracking RegExp can take
 * exponential time on patterns such as `(a+)+$`. Like Go's MatchString, a pattern matches anywhere in the value.
 */
import { RE2JS } from 're2js';
import { InvalidArgumentError, errorMessage } from '../errors';

export type Operator = '==' | '!=' | '~=' | 'present';

export interface Selector {
  fieldpath: string[];
  operator: Operator;
  value: string;
  regexp?: RE2JS;
}

/** Looks up a field path of the thing being filtered; undefined when the field is absent. */
export type FieldLookup = (fieldpath: string[]) => string | undefined;

export type Predicate = (lookup: FieldLookup) => boolean;

const QUOTES = new Set(['"', '/', '|']);

class Scanner {
  pos = 0;

  constructor(readonly input: string) {}

  fail(what: string): never {
    throw new InvalidArgumentError(`filters: ${what} at position ${this.pos} in ${JSON.stringify(this.input)}`);
  }

  skipSpace(): void {
    while (this.pos < this.input.length && /\s/.test(this.input[this.pos]!)) this.pos++;
  }

  peek(): string | undefined {
    return this.input[this.pos];
  }

  done(): boolean {
    return this.pos >= this.input.length;
  }

  quoted(): string {
    const quote = this.input[this.pos]!;
    this.pos++;
    let out = '';
    while (!this.done()) {
      const c = this.input[this.pos++]!;
      if (c === quote) return out;
      if (c === '\\' && quote === '"') {
        const e = this.input[this.pos++];
        if (e === undefined) break;
        out += ({ n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' } as Record<string, string>)[e] ?? `\\${e}`;
        continue;
      }
      if (c === '\\' && this.input[this.pos] === quote) {
        // In raw quotes only the quote character itself is escaped; other backslashes stay (regexps).
        out += quote;
        this.pos++;
        continue;
      }
      out += c;
    }
    return this.fail('unterminated quoted string');
  }

  field(): string {
    const c = this.peek();
    if (c !== undefined && QUOTES.has(c)) return this.quoted();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.input.slice(this.pos));
    if (!m) this.fail('expected a field name');
    this.pos += m[0].length;
    return m[0];
  }

  operator(): Operator | undefined {
    const two = this.input.slice(this.pos, this.pos + 2);
    if (two === '==' || two === '!=' || two === '~=') {
      this.pos += 2;
      return two;
    }
    return undefined;
  }

  value(): string {
    const c = this.peek();
    if (c !== undefined && QUOTES.has(c)) return this.quoted();
    const m = /^[^\s,]+/.exec(this.input.slice(this.pos));
    if (!m) this.fail('expected a value');
    this.pos += m[0].length;
    return m[0];
  }
}

function parseSelector(s: Scanner): Selector {
  s.skipSpace();
  const fieldpath = [s.field()];
  while (s.peek() === '.') {
    s.pos++;
    fieldpath.push(s.field());
  }
  s.skipSpace();
  const operator = s.operator();
  if (operator === undefined) return { fieldpath, operator: 'present', value: '' };
  s.skipSpace();
  const value = s.value();
  if (operator !== '~=') return { fieldpath, operator, value };
  try {
    return { fieldpath, operator, value, regexp: RE2JS.compile(value) };
  } catch (err) {
    throw new InvalidArgumentError(`filters: bad regular expression ${JSON.stringify(value)}: ${errorMessage(err)}`, { cause: err });
  }
}

/** Parses one filter string into the list of selectors that must all match. */
export function parseFilter(input: string): Selector[] {
  const s = new Scanner(input);
  const selectors: Selector[] = [];
  for (;;) {
    selectors.push(parseSelector(s));
    s.skipSpace();
    if (s.done()) return selectors;
    if (s.peek() !== ',') s.fail('expected "," or end of filter');
    s.pos++;
  }
}

function matches(selector: Selector, lookup: FieldLookup): boolean {
  const actual = lookup(selector.fieldpath);
  switch (selector.operator) {
    case 'present':
      return actual !== undefined;
    case '==':
      return actual === selector.value;
    case '!=':
      return actual !== selector.value;
    case '~=':
      return actual !== undefined && selector.regexp!.matcher(actual).find();
  }
}

/** Compiles filter strings into one predicate: the OR of the filters, each the AND of its selectors. */
export function compileFilters(filters: readonly string[]): Predicate {
  const parsed = filters.filter((f) => f.trim() !== '').map(parseFilter);
  if (parsed.length === 0) return () => true;
  return (lookup) => parsed.some((selectors) => selectors.every((sel) => matches(sel, lookup)));
}
