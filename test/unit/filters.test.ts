import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFilters, parseFilter } from '../../src/snapshotter/filters';
import { InvalidArgumentError } from '../../src/errors';

const info: Record<string, string> = {
  name: 'k8s.io/3/sha256:abc',
  parent: 'k8s.io/2/sha256:def',
  kind: 'committed',
  'labels.containerd.io/snapshot.ref': 'sha256:abc',
  'labels.team': 'blue',
};
const lookup = (fieldpath: string[]): string | undefined => info[fieldpath.join('.')];

describe('filters', () => {
  it('parses the remote-snapshot lookup containerd sends', () => {
    const sel = parseFilter('labels."containerd.io/snapshot.ref"==sha256:abc,parent=="k8s.io/2/sha256:def"');
    assert.deepEqual(
      sel.map((s) => [s.fieldpath, s.operator, s.value]),
      [
        [['labels', 'containerd.io/snapshot.ref'], '==', 'sha256:abc'],
        [['parent'], '==', 'k8s.io/2/sha256:def'],
      ],
    );
    assert.equal(compileFilters(['labels."containerd.io/snapshot.ref"==sha256:abc,parent=="k8s.io/2/sha256:def"'])(lookup), true);
    assert.equal(compileFilters(['labels."containerd.io/snapshot.ref"==sha256:abc,parent=="other"'])(lookup), false);
  });

  it('ANDs selectors in a filter and ORs filters', () => {
    assert.equal(compileFilters(['kind==committed,labels.team==red'])(lookup), false);
    assert.equal(compileFilters(['kind==committed,labels.team==red', 'labels.team==blue'])(lookup), true);
  });

  it('supports !=, regular expressions and presence', () => {
    assert.equal(compileFilters(['kind!=active'])(lookup), true);
    assert.equal(compileFilters(['name~=/^k8s\\.io\\/[0-9]+\\//'])(lookup), true);
    assert.equal(compileFilters(['name~=^default/'])(lookup), false);
    assert.equal(compileFilters(['labels.team'])(lookup), true);
    assert.equal(compileFilters(['labels.missing'])(lookup), false);
    assert.equal(compileFilters(['labels.missing!=x'])(lookup), true);
  });

  it('matches client patterns with RE2 semantics, in linear time', () => {
    // (a+)+$ against "aaaa…b" backtracks exponentially in JavaScript's RegExp; RE2 answers at once.
    const long = (fieldpath: string[]): string | undefined => (fieldpath.join('.') === 'labels.x' ? `${'a'.repeat(50_000)}b` : undefined);
    assert.equal(compileFilters(['labels.x~="(a+)+$"'])(long), false);
    assert.equal(compileFilters(['labels.x~="(a+)+b$"'])(long), true);
    // Unanchored like Go's MatchString; RE2-only syntax such as \pL (a Unicode class) works.
    assert.equal(compileFilters(['labels.team~=lu'])(lookup), true);
    assert.equal(compileFilters(['labels.team~=/^\\pL+$/'])(lookup), true);
  });

  it('rejects patterns RE2 does not support (backreferences, lookbehind) with a clear InvalidArgument', () => {
    for (const pattern of ['/(a)\\1/', '/(?<=a)b/']) {
      assert.throws(
        () => compileFilters([`name~=${pattern}`]),
        (err: Error) => err instanceof InvalidArgumentError && /bad regular expression .*error parsing regexp/.test(err.message),
      );
    }
  });

  it('decodes escapes in double-quoted values', () => {
    assert.equal(parseFilter('name=="a\\"b"')[0]!.value, 'a"b');
  });

  it('matches everything with no filters or only empty ones', () => {
    assert.equal(compileFilters([])(lookup), true);
    assert.equal(compileFilters([''])(lookup), true);
  });

  for (const bad of ['==x', 'name==', 'name=="unterminated', 'name==a b', 'name~=/[/', 'labels.', 'name==a,']) {
    it(`rejects ${JSON.stringify(bad)} with InvalidArgument`, () => {
      assert.throws(() => compileFilters([bad]), InvalidArgumentError);
    });
  }
});
