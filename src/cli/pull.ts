import { Command, Option } from 'commander';
import { ContainerdClient, ImagePuller } from '../containerd';
import { errorMessage } from '../errors';
import { PullProgress } from './pull-progress';
import { RegistryFlags, addRegistryOptions, oneLine, registryFromFlags } from './registry-flags';

interface PullFlags extends RegistryFlags {
  address: string;
  namespace: string;
  snapshotter: string;
}

/**
 * `clip pull IMAGE`: pulls an image into containerd for the clip snapshotter with the labels that let
 * clip serve its layers lazily (`ctr images pull` of containerd 1.6/1.7 sends none), like stargz's
 * `ctr-remote images rpull`. Afterwards `ctr run --snapshotter clip IMAGE …` starts containers.
 * Progress goes to stdout when it is a terminal; otherwise only the final line is printed.
 */
export function pullCommand(): Command {
  const cmd = new Command('pull')
    .description('pull an image into containerd so that clip serves its layers lazily')
    .argument('<image>', 'image reference, e.g. docker.io/library/busybox:latest')
    .addOption(new Option('--address <socket>', "containerd's socket").env('CONTAINERD_ADDRESS').default('/run/containerd/containerd.sock'))
    .addOption(new Option('--namespace <name>', 'containerd namespace').env('CONTAINERD_NAMESPACE').default('default'))
    .option('--snapshotter <name>', 'snapshotter to unpack into (its proxy plugin name in containerd)', 'clip');
  return addRegistryOptions(cmd).action(async (image: string, flags: PullFlags) => {
    const { registry, platform } = await registryFromFlags(flags);
    const containerd = new ContainerdClient({ address: flags.address, namespace: flags.namespace });
    const progress = new PullProgress(process.stdout, image);
    const abort = new AbortController();
    const onSignal = (): void => abort.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const result = await new ImagePuller(containerd, registry, progress).pull({
        reference: image,
        snapshotter: flags.snapshotter,
        platform,
        signal: abort.signal,
      });
      progress.finish(result);
    } catch (err) {
      progress.stop();
      throw new Error(`pull ${image}: ${oneLine(errorMessage(err))}`, { cause: err });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      containerd.close();
      await registry.close();
    }
  });
}
