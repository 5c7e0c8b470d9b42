/**
 * The one door to the clip_handoff native addon (native/handoff.c, built by `npm run build:native`): fd
 * passing to clip-fd-holder, sd_notify and flock, which Node has no API for. Loads it on first use.
 */
import path from 'node:path';
import { lazyAddon } from '../native-addon';

export interface HeldFd {
  name: string;
  fd: number;
}

interface HandoffAddon {
  holderPut(socket: string, name: string, fd: number): void;
  holderDrop(socket: string, name: string): void;
  holderList(socket: string): HeldFd[];
  notify(socket: string, state: string, fd?: number): void;
  lockExclusive(file: string): number;
  closeOnExec(fd: number): void;
}

const NATIVE_DIR = path.join(__dirname, 'native');

export const handoffAddon = lazyAddon<HandoffAddon>(path.join(NATIVE_DIR, 'clip_handoff.node'), 'hand-off addon');

/** The clip-fd-holder program built beside the addon. */
export const FD_HOLDER_PROGRAM = path.join(NATIVE_DIR, 'clip-fd-holder');

/** The errno name a failed native call carries as its code (ENOENT, ECONNREFUSED, EWOULDBLOCK, ...). */
export function nativeCode(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}
