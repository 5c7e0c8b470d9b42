/**
 * `clip index IMAGE -o DIR` writes the clip archive of each layer of an image into DIR as
 * `<layer hex>.clip`; `clip index --layer-file BLOB -o FILE` writes the archive of one local layer blob.
 * `clip index push IMAGE` publishes an image's archives in its registry (published-archives.ts), so that
 * nodes serve the image without indexing it. A progress bar is drawn on stderr when it is a terminal.
 */
import { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeArchiveFile } from '../archive';
import { parseSize } from '../daemon/config';
import { createLogger } from '../daemon/logger';
import { errorMessage } from '../errors';
import { IndexImageOptions, indexImage, indexLayerFile, writeArchives } from '../remote/image-indexer';
import { publishArchives } from '../remote/published-archives';
import { formatPlatform } from '../registry';
import { loadSigningKey } from '../trust';
import { UsageError } from './exit-codes';
import { IndexProgress } from './index-progress';
import { checkLayerFile } from './layer-file-check';
import { formatBytes } from './pull-progress';
import { RegistryFlags, addRegistryOptions, oneLine, registryFromFlags } from './registry-flags';

interface IndexFlags extends RegistryFlags {
  output?: string;
  layerFile?: string;
  spanSize: string;
  reuse?: string;
  signKey?: string;
  /** commander's --no-startup-bundles: false when given. */
  startupBundles?: boolean;
}

const SPAN_SIZE_HELP = 'uncompressed bytes per span (one range request each), e.g. 4MiB';
const REUSE_HELP = 'reuse valid archives found in DIR as <layer hex>.clip (clip index -o output, or /var/lib/clip/archives/sha256)';

function spanSizeFlag(value: string): number {
  try {
    return parseSize(value);
  } catch (err) {
    throw new UsageError(`--span-size: ${errorMessage(err)}`, { cause: err });
  }
}

/** Runs `work` with the progress bar, and the registry it needs; errors become one line naming `what`. */
async function indexing<T>(what: string, flags: IndexFlags, work: (options: IndexImageOptions, progress: IndexProgress) => Promise<T>): Promise<T> {
  const spanSize = spanSizeFlag(flags.spanSize);
  const { registry, platform } = await registryFromFlags(flags);
  const progress = new IndexProgress(process.stderr, what);
  try {
    return await work(
      {
        registry,
        platform,
        spanSize,
        reuseDir: flags.reuse ? path.resolve(flags.reuse) : undefined,
        logger: createLogger('warn'),
        onResolved: (image) =>
          progress.title([image.reference.toString(), image.digest.slice(0, 19), image.platform ? formatPlatform(image.platform) : ''].filter((p) => p).join('  ')),
        onProgress: (p) => progress.layer(p),
      },
      progress,
    );
  } catch (err) {
    progress.stop();
    throw new Error(`${what}: ${oneLine(errorMessage(err))}`, { cause: err });
  } finally {
    progress.stop();
    await registry.close();
  }
}

async function indexFile(file: string, output: string, spanSize: number): Promise<void> {
  await checkLayerFile(file);
  const progress = new IndexProgress(process.stderr, file);
  try {
    const archive = await indexLayerFile(file, {
      spanSize,
      onProgress: (bytes, size) => progress.layer({ index: 0, digest: file, size, state: 'indexing', bytes }),
    });
    await fsp.mkdir(path.dirname(path.resolve(output)), { recursive: true });
    await writeArchiveFile(output, archive);
    progress.stop();
    if (process.stderr.isTTY) process.stderr.write(`wrote the archive of ${archive.layerDigest} to ${output}\n`);
  } catch (err) {
    progress.stop();
    throw new Error(`index ${file}: ${oneLine(errorMessage(err))}`, { cause: err });
  }
}

function pushCommand(): Command {
  return addRegistryOptions(
    new Command('push')
      .description("publish the clip archives of an image's layers in its registry (an OCI artifact referring to the image)")
      .argument('<image>', 'image reference, e.g. registry.example.com/app:1.0')
      .option('--span-size <size>', SPAN_SIZE_HELP, '4MiB')
      .option('--reuse <dir>', REUSE_HELP)
      .option('--sign-key <file>', 'sign each archive with this ed25519 private key (PEM), for nodes that list its public key in [lazy] trusted_keys')
      .option('--no-startup-bundles', 'do not build and publish start-up bundles for archives that have start-up profiles'),
  ).action(async (image: string, flags: IndexFlags) => {
    const signingKey = flags.signKey ? await loadSigningKey(path.resolve(flags.signKey)) : undefined;
    const result = await indexing(`index push ${image}`, flags, async (options, progress) => {
      const indexed = await indexImage(image, options);
      progress.stop();
      const published = await publishArchives(options.registry, indexed.image, indexed.layers.map((l) => l.archive), {
        signingKey,
        startupBundles: flags.startupBundles !== false,
      });
      return { indexed, published };
    });
    const { indexed, published } = result;
    const bytes = published.archives.reduce((n, a) => n + a.size, 0);
    const where = published.via === 'api' ? 'referrers API' : `referrers tag ${published.tag}`;
    process.stdout.write(
      `published ${published.archives.length} archives (${formatBytes(bytes)}) of ${indexed.image.reference}@${indexed.image.digest} as ${published.digest} (${where})` +
        `${signingKey ? `, signed by ${signingKey.keyId}` : ', unsigned'}\n`,
    );
    const bundles = published.archives.flatMap((a) => (a.bundle ? [a.bundle.size] : []));
    if (bundles.length > 0) {
      process.stdout.write(`with ${bundles.length} start-up bundles (${formatBytes(bundles.reduce((n, b) => n + b, 0))}) in the archives\n`);
    }
  });
}

export function indexCommand(): Command {
  const cmd = addRegistryOptions(
    new Command('index')
      .description("write the clip archives of an image's layers, or of one layer file")
      .argument('[image]', 'image reference, e.g. registry.example.com/app:1.0')
      .option('-o, --output <path>', 'directory for the archives (<layer hex>.clip); the archive file with --layer-file')
      .option('--layer-file <file>', 'index this layer blob (gzip or uncompressed tar) instead of an image')
      .option('--span-size <size>', SPAN_SIZE_HELP, '4MiB')
      .option('--reuse <dir>', REUSE_HELP),
  )
    // Options after `push` are push's own, not index's (the program enables positional options too).
    .enablePositionalOptions()
    .action(async (image: string | undefined, flags: IndexFlags) => {
      if (image !== undefined && flags.layerFile !== undefined) throw new UsageError('index: give an image or --layer-file, not both');
      if (image === undefined) {
        if (flags.layerFile === undefined) {
          throw new UsageError('index: give an image (clip index IMAGE -o DIR) or a layer blob (clip index --layer-file BLOB -o FILE); see clip index --help');
        }
        if (!flags.output) throw new UsageError('index --layer-file: -o/--output is required: the archive file to write');
        return indexFile(flags.layerFile, flags.output, spanSizeFlag(flags.spanSize));
      }
      if (!flags.output) throw new UsageError('index: -o/--output is required: the directory for the archives');
      const output = path.resolve(flags.output);
      const files = await indexing(`index ${image}`, flags, async (options) => {
        const indexed = await indexImage(image, options);
        return writeArchives(output, indexed.layers.map((l) => l.archive));
      });
      if (process.stderr.isTTY) process.stderr.write(`wrote ${files.length} archives to ${output}\n`);
    });
  cmd.addCommand(pushCommand().exitOverride());
  return cmd;
}
