/** The daemon's configuration as `clip serve` and the commands working on its root see it: --config, else the default file if present, then flags. */
import { promises as fsp } from 'node:fs';
import { ConfigOverrides, DEFAULT_CONFIG_FILE, DaemonConfig, loadConfigFile, resolveConfig } from '../daemon/config';

export async function configFromFlags(configFlag: string | undefined, fromFlags: ConfigOverrides): Promise<{ config: DaemonConfig; file?: string }> {
  const file = configFlag ?? (await fsp.access(DEFAULT_CONFIG_FILE).then(() => DEFAULT_CONFIG_FILE, () => undefined));
  const fromFile = file ? await loadConfigFile(file) : {};
  return { config: resolveConfig(fromFile, fromFlags), file };
}
