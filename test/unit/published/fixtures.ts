/**
 * Real layers for the published-archive tests: tarballs from python3's tarfile, gzipped by zlib, indexed by
 * the real indexer, and an OCI image of them in an OciRegistry.
 */
import { gzipSync } from 'node:zlib';
import type { ClipArchive } from '../../../src/archive';
import { indexLayer } from '../../../src/indexer';
import { pythonTars, randomBytes, sha256 } from '../indexer/fixtures';
import { OciRegistry } from './oci-registry';

export interface TestLayer {
  blob: Buffer;
  digest: string;
  archive: ClipArchive;
}

export interface TestImage {
  ref: string;
  manifest: { digest: string; size: number };
  layers: TestLayer[];
}

/** Two layers: a few small files, and a 300 KiB random file with a text file (several 64 KiB spans). */
export async function testLayers(): Promise<TestLayer[]> {
  const tars = pythonTars({
    small: `tf = tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT)
add(tf, 'etc', tarfile.DIRTYPE, mode=0o755)
add(tf, 'etc/hello', data=b'hello from a published layer\\n')
add(tf, 'etc/.wh.gone')
tf.close()`,
    large: `tf = tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT)
add(tf, 'data', tarfile.DIRTYPE, mode=0o755)
add(tf, 'data/random.bin', data=base64.b64decode('${randomBytes(300 * 1024, 7).toString('base64')}'))
add(tf, 'data/text.txt', data=b'some text\\n' * 1000)
tf.close()`,
  });
  const out: TestLayer[] = [];
  for (const tar of [tars.small, tars.large]) {
    const blob = gzipSync(tar);
    const digest = sha256(blob);
    const archive = await indexLayer([blob], {
      layerDigest: digest,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      compression: 'gzip',
      spanSize: 64 * 1024,
    });
    out.push({ blob, digest, archive });
  }
  return out;
}

/** Puts an image of `layers` into the registry's repository under `repo:tag`. */
export function addImage(registry: OciRegistry, layers: TestLayer[], repo = 'clip/test', tag = 'v1'): TestImage {
  const image = registry.repo.addImage(layers.map((l) => l.blob), tag);
  return { ref: `${registry.host}/${repo}:${tag}`, manifest: { digest: image.manifest.digest, size: image.manifest.size }, layers };
}

export { recordingLogger } from '../../helpers/recording-logger';
