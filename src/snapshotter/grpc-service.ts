/**
 * Transport: containerd's Snapshots gRPC service on top of a Snapshotter. Each handler converts the
 * request, calls the snapshotter, and converts the result; every error is translated (and logged) once,
 * in `unary`.
 */
import { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { Empty } from '../generated/google/protobuf/empty';
import {
  Info as InfoMessage,
  Kind as KindMessage,
  ListSnapshotsRequest,
  ListSnapshotsResponse,
  SnapshotsServer,
} from '../generated/containerd/services/snapshots/v1/snapshots';
import { Mount as MountMessage } from '../generated/containerd/types/mount';
import { UnavailableError, errorMessage } from '../errors';
import { logLevelFor, toGrpcStatus } from './grpc-status';
import { Snapshotter } from './snapshotter';
import { Info, Kind, Mount } from './types';
import { timestampOfMicros } from './wall-clock';

/** The reference server sends List results in batches of this many Infos per stream message. */
const LIST_BATCH = 100;

/** Requests are logged at debug level, cut to a readable length. */
function abbreviate(text: string, max = 400): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`;
}

function toKindMessage(kind: Kind): KindMessage {
  switch (kind) {
    case Kind.VIEW:
      return KindMessage.VIEW;
    case Kind.ACTIVE:
      return KindMessage.ACTIVE;
    case Kind.COMMITTED:
      return KindMessage.COMMITTED;
  }
}

function toInfoMessage(info: Info): InfoMessage {
  return {
    name: info.name,
    parent: info.parent,
    kind: toKindMessage(info.kind),
    createdAt: timestampOfMicros(info.created),
    updatedAt: timestampOfMicros(info.updated),
    labels: info.labels,
  };
}

function toMountMessages(mounts: Mount[]): MountMessage[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: m.options }));
}

export function createSnapshotsServer(snapshotter: Snapshotter, logger: Logger): SnapshotsServer {
  const fail = (method: string, err: unknown): ReturnType<typeof toGrpcStatus> => {
    const st = toGrpcStatus(err);
    logger.log(logLevelFor(st.code), `${method}: ${errorMessage(err)}`);
    return st;
  };

  function unary<Req, Res>(method: string, handler: (req: Req, signal: AbortSignal, namespace: string | undefined) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      if (logger.isDebugEnabled()) logger.debug(`${method} ${abbreviate(JSON.stringify(call.request))}`);
      // A call the client cancelled (or whose deadline passed) stops the work only it was waiting for.
      const cancelled = new AbortController();
      call.once('cancelled', () => cancelled.abort(new UnavailableError(`${method} cancelled by the client`)));
      // containerd sends its namespace with every call it makes for one (not with its GC's calls).
      const namespace = call.metadata.get('containerd-namespace')[0];
      handler(call.request, cancelled.signal, typeof namespace === 'string' ? namespace : undefined).then(
        (res) => callback(null, res),
        (err: unknown) => callback(fail(method, err)),
      );
    };
  }

  return {
    prepare: unary('Prepare', async (req, signal, namespace) => ({
      mounts: toMountMessages(await snapshotter.prepare(req.key, req.parent, req.labels, signal, namespace)),
    })),
    view: unary('View', async (req) => ({
      mounts: toMountMessages(await snapshotter.view(req.key, req.parent, req.labels)),
    })),
    mounts: unary('Mounts', async (req) => ({ mounts: toMountMessages(await snapshotter.mounts(req.key)) })),
    commit: unary('Commit', async (req): Promise<Empty> => {
      await snapshotter.commit(req.name, req.key, req.labels, req.parent);
      return {};
    }),
    remove: unary('Remove', async (req): Promise<Empty> => {
      await snapshotter.remove(req.key);
      return {};
    }),
    stat: unary('Stat', async (req) => ({ info: toInfoMessage(await snapshotter.stat(req.key)) })),
    update: unary('Update', async (req) => {
      const info = req.info;
      const paths = req.updateMask ?? [];
      return { info: toInfoMessage(await snapshotter.update(info?.name ?? '', info?.labels ?? {}, paths)) };
    }),
    list: (call: ServerWritableStream<ListSnapshotsRequest, ListSnapshotsResponse>): void => {
      snapshotter.list(call.request.filters).then(
        (infos) => {
          for (let i = 0; i < infos.length; i += LIST_BATCH) {
            call.write({ info: infos.slice(i, i + LIST_BATCH).map(toInfoMessage) });
          }
          call.end();
        },
        (err: unknown) => call.emit('error', fail('List', err)),
      );
    },
    usage: unary('Usage', async (req) => snapshotter.usage(req.key)),
    cleanup: unary('Cleanup', async (): Promise<Empty> => {
      await snapshotter.cleanup();
      return {};
    }),
  };
}
