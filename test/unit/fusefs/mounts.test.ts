import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFuseMount, parseMountInfo } from '../../../src/fusefs/mounts';

const MOUNTINFO = [
  '26 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard',
  '41 26 0:38 / /var/lib/clip/layers/a\\040b rw,nosuid,nodev,relatime shared:20 master:3 - fuse.clip clip:sha256:abc ro,user_id=0,group_id=0,allow_other',
  '42 26 0:39 / /mnt/plain rw,relatime - fuse fuse rw,user_id=0,group_id=0',
  '43 26 0:40 / /mnt/overlay rw,relatime - overlay overlay rw,lowerdir=/a:/b,upperdir=/u,workdir=/w',
  '',
].join('\n');

describe('parseMountInfo', () => {
  it('parses fields, optional fields and octal escapes', () => {
    const mounts = parseMountInfo(MOUNTINFO);
    assert.equal(mounts.length, 4);
    const clip = mounts[1];
    assert.deepEqual(
      [clip.mountId, clip.parentId, clip.device, clip.mountPoint, clip.fsType, clip.source, clip.superOptions],
      [41, 26, '0:38', '/var/lib/clip/layers/a b', 'fuse.clip', 'clip:sha256:abc', 'ro,user_id=0,group_id=0,allow_other'],
    );
    assert.equal(mounts[3].superOptions, 'rw,lowerdir=/a:/b,upperdir=/u,workdir=/w');
  });

  it('tells FUSE mounts from others', () => {
    assert.deepEqual(parseMountInfo(MOUNTINFO).map(isFuseMount), [false, true, true, false]);
  });
});
