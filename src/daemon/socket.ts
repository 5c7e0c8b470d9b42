/**
 * The unix socket containerd dials: created with mode 0600 (the umask is narrowed while binding, so there
 * is no moment when it is open to others), replacing a stale socket file but never a live daemon's.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { promises as fsp } from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { FailedPreconditionError } from '../errors';

/** True when something accepts connections on the socket. */
function isListening(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(address);
    const done = (result: boolean): void => {
      conn.destroy();
      resolve(result);
    };
    conn.once('connect', () => done(true));
    conn.once('error', () => done(false));
    conn.setTimeout(1000, () => done(false));
  });
}

/** Makes the socket's directory and removes a stale socket file left by a dead process. */
export async function prepareSocketPath(address: string): Promise<void> {
  await fsp.mkdir(path.dirname(address), { recursive: true, mode: 0o755 });
  const st = await fsp.lstat(address).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw new FailedPreconditionError(`${address} exists and is not a socket`);
  if (await isListening(address)) throw new FailedPreconditionError(`another process is serving ${address}`);
  await fsp.unlink(address);
}

/** Runs bind with umask 0177 so the socket file is created 0600. */
async function withPrivateUmask<T>(bind: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o177);
  try {
    return await bind();
  } finally {
    process.umask(previous);
  }
}

/** Binds a gRPC server to a unix socket that only root can use (0600), replacing a stale socket file. */
export async function bindPrivateSocket(server: Server, address: string): Promise<void> {
  await prepareSocketPath(address);
  await withPrivateUmask(
    () =>
      new Promise<number>((resolve, reject) =>
        server.bindAsync(`unix://${address}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
      ),
  );
  await fsp.chmod(address, 0o600);
}

/** Makes an HTTP server listen on a unix socket that only root can use (0600), replacing a stale socket file. */
export async function listenPrivate(server: http.Server, address: string): Promise<void> {
  await prepareSocketPath(address);
  await withPrivateUmask(
    () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(address, () => {
          server.off('error', reject);
          resolve();
        });
      }),
  );
  await fsp.chmod(address, 0o600);
}
