import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
} from '../../../src/errors';
import { EEXIST, EINVAL, EIO, ENOENT, EOPNOTSUPP, FuseErrorReporter, errnoFor } from '../../../src/fusefs/errno';
import { memoryLogger } from '../../integration/fusefs/layer-fixture';

describe('errno translation', () => {
  it('maps every clip error code, and anything else to EIO', () => {
    assert.equal(errnoFor(new NotFoundError('x')), ENOENT);
    assert.equal(errnoFor(new AlreadyExistsError('x')), EEXIST);
    assert.equal(errnoFor(new InvalidArgumentError('x')), EINVAL);
    assert.equal(errnoFor(new FailedPreconditionError('x')), EIO);
    assert.equal(errnoFor(new UnavailableError('x')), EIO);
    assert.equal(errnoFor(new InternalError('x')), EIO);
    assert.equal(errnoFor(new NotImplementedError('x')), EOPNOTSUPP);
    assert.equal(errnoFor(new Error('x')), EIO);
    assert.equal(errnoFor('a string'), EIO);
    assert.equal(EIO, -5);
  });

  it('logs each translated error once, with the operation, path and errno', () => {
    const { logger, lines } = memoryLogger();
    const reporter = new FuseErrorReporter(logger, 'layer sha256:abc');
    assert.equal(reporter.errno('read', '/bin/sh', new UnavailableError('[0, 4096): span 2: connection reset')), EIO);
    assert.equal(reporter.errno('getattr', '/x', new InvalidArgumentError('bad')), EINVAL);
    assert.deepEqual(lines, [
      'error layer sha256:abc: read /bin/sh: [0, 4096): span 2: connection reset (errno 5)',
      'warn layer sha256:abc: getattr /x: bad (errno 22)',
    ]);
  });
});
