/**
 * Parsing `WWW-Authenticate` (RFC 9110 §11.6.1): one or more challenges, each a scheme followed by
 * either a token68 or comma-separated `name=value` parameters whose values may be quoted strings
 * with backslash escapes. Commas separate both parameters and challenges, so a word followed by `=`
 * is a parameter and any other word starts the next challenge:
 *
 *   Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push", Basic realm="x"
 */
export interface AuthChallenge {
  /** Lower-cased scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Parameters with lower-cased names. */
  params: Record<string, string>;
  token68?: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))/;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  skip(chars: RegExp): void {
    while (this.pos < this.text.length && chars.test(this.text[this.pos]!)) this.pos++;
  }

  match(re: RegExp): string | undefined {
    const m = re.exec(this.text.slice(this.pos));
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  peek(): string | undefined {
    return this.text[this.pos];
  }

  quoted(): string {
    let out = '';
    this.pos++; // opening quote
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos++]!;
      if (ch === '"') return out;
      if (ch === '\\' && this.pos < this.text.length) out += this.text[this.pos++]!;
      else out += ch;
    }
    return out; // unterminated: take what there is
  }
}

/** Reads `name = value` at the scanner's position, or returns undefined and leaves the position alone. */
function readParam(s: Scanner): [string, string] | undefined {
  const start = s.pos;
  const name = s.match(TOKEN);
  if (name === undefined) return undefined;
  s.skip(/[ \t]/);
  if (s.peek() !== '=') {
    s.pos = start;
    return undefined;
  }
  s.pos++;
  s.skip(/[ \t]/);
  const value = s.peek() === '"' ? s.quoted() : (s.match(TOKEN) ?? '');
  return [name.toLowerCase(), value];
}

function parseOne(header: string, into: AuthChallenge[]): void {
  const s = new Scanner(header);
  for (;;) {
    s.skip(/[ \t,]/);
    if (s.pos >= header.length) return;
    const scheme = s.match(TOKEN);
    if (scheme === undefined) {
      s.pos++; // not a token: skip the character and resynchronise
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    into.push(challenge);
    s.skip(/[ \t]/);
    let param = readParam(s);
    if (param === undefined) {
      const token68 = s.match(TOKEN68);
      if (token68 !== undefined) challenge.token68 = token68;
      continue;
    }
    while (param !== undefined) {
      challenge.params[param[0]] = param[1];
      s.skip(/[ \t,]/);
      param = readParam(s);
    }
  }
}

/** All challenges of one or more `WWW-Authenticate` header values, in order. */
export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) parseOne(value, out);
  return out;
}
