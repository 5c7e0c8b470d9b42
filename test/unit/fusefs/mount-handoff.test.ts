/** Names of handed-over FUSE connections, and what a service manager's environment says. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serviceEnvironment } from '../../../src/daemon/config';
import { isStorableName } from '../../../src/fusefs/fd-store';
import { connectionName, parseConnectionName } from '../../../src/fusefs/mount-handoff';

describe('handed-over connection names', () => {
  it('carry the mount point and its device, and parse back', () => {
    const name = connectionName('/var/lib/clip/snapshots/12/fs', '0:57');
    assert.equal(name, 'fuse/0_57/var/lib/clip/snapshots/12/fs');
    assert.deepEqual(parseConnectionName(name!), { dir: '/var/lib/clip/snapshots/12/fs', device: '0:57' });
  });

  it('are not made for paths systemd cannot store (":", control characters, non-ASCII, over 255 bytes)', () => {
    assert.equal(connectionName('/a:b/fs', '0:1'), undefined);
    assert.equal(connectionName('/a\nb/fs', '0:1'), undefined);
    assert.equal(connectionName('/é/fs', '0:1'), undefined);
    assert.equal(connectionName(`/${'x'.repeat(250)}`, '0:1'), undefined);
    assert.equal(isStorableName('fuse/0_1/ok path'), true);
    assert.equal(isStorableName(''), false);
  });

  it('that are not ours parse to nothing', () => {
    assert.equal(parseConnectionName('socket'), undefined);
    assert.equal(parseConnectionName('fuse/0_57relative'), undefined);
    assert.equal(parseConnectionName('fuse/x_1/a'), undefined);
  });
});

describe('serviceEnvironment', () => {
  it('takes the fds passed to this process, named, from fd 3', () => {
    const env = { NOTIFY_SOCKET: '/run/systemd/notify', LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'fuse/0_1/a:fuse/0_2/b' };
    assert.deepEqual(serviceEnvironment(env, 42), {
      notifySocket: '/run/systemd/notify',
      passedFds: [
        { fd: 3, name: 'fuse/0_1/a' },
        { fd: 4, name: 'fuse/0_2/b' },
      ],
    });
  });

  it('ignores fds passed to another process (LISTEN_PID) and an absent manager', () => {
    assert.deepEqual(serviceEnvironment({ LISTEN_PID: '41', LISTEN_FDS: '2' }, 42), { notifySocket: undefined, passedFds: [] });
    assert.deepEqual(serviceEnvironment({}, 42), { notifySocket: undefined, passedFds: [] });
  });
});
