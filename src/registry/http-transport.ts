/**
 * The HTTP layer under every registry call, on undici's `request` with an `Agent` (one connection
 * pool per origin). It owns timeouts, retries and redirects, and knows nothing about registries:
 *
 * * Timeouts: connect (Agent), headers and body idle time (per request), and per attempt an overall
 *   deadline and, for large bodies, a minimum transfer rate (attempt-deadline.ts). No call can hang, and
 *   no registry can hold one open by trickling bytes.
 * * Retries: network errors, timeouts, 408, 429 and 5xx, with back-off (retry-policy.ts). The final
 *   failure is an UnavailableError with the cause. Other statuses are returned to the caller.
 * * Redirects: followed up to 5 hops. Request headers (Authorization, Accept, configured headers)
 *   are sent only to the origin of the original URL; a hop to any other origin (a CDN, object storage
 *   with a pre-signed URL) gets only `Range` and the User-Agent. A body is never sent to another origin.
 * * Abort signals end waits, requests and body reads at once, with the signal's reason.
 * * TLS: one connection pool (undici Agent) per distinct TLS setting. hosts.toml `skip_verify` and
 *   client certificates apply to the origin of the URL only; its extra CA certificates (`ca`, added to
 *   the default roots) also to redirect targets, as containerd trusts them for the whole host's client.
 */
import { createHash } from 'node:crypto';
import { IncomingHttpHeaders } from 'node:http';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import { Agent, Dispatcher, request } from 'undici';
import { UnavailableError, isClipError } from '../errors';
import { RegistryProtocolError, RegistryRequestError } from './registry-errors';
import { RegistryLogger, redactUrl, silentLogger } from './logger';
import { AttemptDeadline, TransferLimits } from './attempt-deadline';
import { EndpointTls } from './endpoint';
import { discard } from './read-body';
import { isTimeoutError } from './timeout-error';
import {
  DEFAULT_RETRY_POLICY,
  RetryPolicy,
  abortReason,
  backoffDelay,
  describeError,
  isRetriableStatus,
  isTransientError,
  parseRetryAfter,
  sleep,
} from './retry-policy';

export interface Timeouts extends TransferLimits {
  /** TCP + TLS connection set-up. */
  connectMs: number;
  /** From sending a request to receiving the response headers. */
  headersMs: number;
  /** Longest pause between two chunks of a response body. */
  bodyMs: number;
}

/**
 * 32 KiB/s judged over 30 s windows: 256 kbit/s for one request, which a link slow enough to go below it
 * even when shared by the handful of transfers clip runs at once (indexing, background fetch, reads) could
 * not pull images over anyway; 30 s of waiting rides out TCP retransmission back-off and short stalls.
 * A registry sending a byte now and then is cut off after 30 s of waiting, and retried.
 */
export const DEFAULT_TIMEOUTS: Timeouts = {
  connectMs: 10_000,
  headersMs: 30_000,
  bodyMs: 30_000,
  requestMs: 30_000,
  minBytesPerSecond: 32 * 1024,
  progressWindowMs: 30_000,
};

export const MAX_REDIRECTS = 5;

export type HeaderValues = Readonly<Record<string, string | readonly string[]>>;

export interface TransportRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  url: URL;
  /** Sent to the origin of `url` only, never across a redirect to another origin. */
  headers?: HeaderValues;
  /** `Range` header value; end to end, so it follows redirects. */
  range?: string;
  /** Sent again on a retry and never across origins (a Buffer, so it can be sent more than once). */
  body?: string | Buffer;
  signal?: AbortSignal;
  /**
   * Bytes of body the caller will read (a blob or a range of one): the attempt's deadline grows with it and
   * the minimum transfer rate applies. Undefined for small responses, which get the plain request deadline.
   */
  expectedBytes?: number;
  /** Skip TLS verification for the origin of `url` (hosts.toml skip_verify); redirect targets are verified. */
  skipVerify?: boolean;
  /** hosts.toml `ca` (every hop) and `client` certificates (the origin of `url` only). */
  tls?: EndpointTls;
}

export interface TransportResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** Must be consumed, dumped or destroyed; the attempt's deadline runs until it closes. */
  body: Readable;
  /** The body's chunks, under the minimum transfer rate when the request set `expectedBytes`. */
  chunks(): AsyncGenerator<Buffer>;
  /** The URL that produced this response, after redirects. */
  url: URL;
}

/** What the transport reports about each attempt (src/metrics); optional. */
export interface RequestObserver {
  /** An attempt ended with a response (its status, after redirects) or without one, after `seconds`. */
  registryRequest(outcome: number | 'network' | 'timeout', seconds: number): void;
}

export interface HttpTransportOptions {
  observer?: RequestObserver;
  timeouts?: Partial<Timeouts>;
  retry?: Partial<RetryPolicy>;
  logger?: RegistryLogger;
  userAgent?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Connection pools kept for distinct TLS settings; the least recently used beyond this are closed. */
const MAX_TLS_AGENTS = 16;

interface TlsSetting {
  verify: boolean;
  ca: readonly string[];
  clientCertificates: ReadonlyArray<{ cert: string; key: string }>;
}

export class HttpTransport {
  readonly timeouts: Timeouts;
  readonly retry: RetryPolicy;
  readonly logger: RegistryLogger;
  private readonly userAgent: string;
  private readonly agent: Agent;
  private readonly observer?: RequestObserver;
  /** Agents for non-default TLS settings, by a digest of the setting, least recently used first. */
  private readonly tlsAgents = new Map<string, Agent>();

  constructor(options: HttpTransportOptions = {}) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.logger = options.logger ?? silentLogger;
    this.userAgent = options.userAgent ?? 'clip-snapshotter';
    this.observer = options.observer;
    this.agent = this.newAgent({ verify: true, ca: [], clientCertificates: [] });
  }

  private newAgent(setting: TlsSetting): Agent {
    const { verify, ca, clientCertificates: client } = setting;
    return new Agent({
      connect: {
        timeout: this.timeouts.connectMs,
        rejectUnauthorized: verify,
        ...(ca.length > 0 ? { ca: [...tls.rootCertificates, ...ca] } : {}),
        ...(client.length > 0 ? { cert: client.map((c) => c.cert), key: client.map((c) => c.key) } : {}),
      },
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.bodyMs,
    });
  }

  /** The connection pool for a hop: `sameOrigin` says whether it goes to the origin of the request's URL. */
  private dispatcher(req: TransportRequest, sameOrigin: boolean): Dispatcher {
    const setting: TlsSetting = {
      verify: !(sameOrigin && req.skipVerify === true),
      ca: req.tls?.ca ?? [],
      clientCertificates: sameOrigin ? (req.tls?.clientCertificates ?? []) : [],
    };
    if (setting.verify && setting.ca.length === 0 && setting.clientCertificates.length === 0) return this.agent;
    const key = createHash('sha256').update(JSON.stringify(setting)).digest('hex');
    let agent = this.tlsAgents.get(key);
    if (agent) this.tlsAgents.delete(key);
    agent ??= this.newAgent(setting);
    this.tlsAgents.set(key, agent);
    for (const [old, oldAgent] of this.tlsAgents) {
      if (this.tlsAgents.size <= MAX_TLS_AGENTS) break;
      this.tlsAgents.delete(old);
      void oldAgent.close(); // in-flight requests finish first
    }
    return agent;
  }

  /** Sends with retries and redirects; resolves with any non-retriable response (the caller judges 4xx). */
  async send(req: TransportRequest): Promise<TransportResponse> {
    const what = `${req.method} ${redactUrl(req.url)}`;
    for (let attempt = 1; ; attempt++) {
      let res: TransportResponse;
      const deadline = new AttemptDeadline(this.timeouts, req.expectedBytes, req.signal);
      const started = this.observer ? performance.now() : 0;
      try {
        res = await this.followRedirects(req, deadline);
        this.observer?.registryRequest(res.statusCode, (performance.now() - started) / 1000);
      } catch (err) {
        deadline.end();
        if (req.signal?.aborted) throw abortReason(req.signal);
        if (isClipError(err)) throw err; // a redirect clip refuses to follow: not a network failure
        this.observer?.registryRequest(deadline.signal.aborted || isTimeoutError(err) ? 'timeout' : 'network', (performance.now() - started) / 1000);
        if (!isTransientError(err) || attempt >= this.retry.maxAttempts) {
          const tries = attempt > 1 ? ` (gave up after ${attempt} attempts)` : '';
          throw new UnavailableError(`${what}: ${describeError(err)}${tries}`, { cause: err });
        }
        const delay = backoffDelay(this.retry, attempt);
        this.logger.warn(`${what}: ${describeError(err)}; retrying in ${delay} ms (attempt ${attempt + 1}/${this.retry.maxAttempts})`);
        await sleep(delay, req.signal);
        continue;
      }
      if (!isRetriableStatus(res.statusCode)) return res;
      discard(res.body);
      if (attempt >= this.retry.maxAttempts) {
        throw new UnavailableError(`${what}: HTTP ${res.statusCode} (gave up after ${attempt} attempts)`);
      }
      const retryAfter = parseRetryAfter(res.headers['retry-after']);
      const delay = backoffDelay(this.retry, attempt, retryAfter);
      this.logger.warn(`${what}: HTTP ${res.statusCode}; retrying in ${delay} ms (attempt ${attempt + 1}/${this.retry.maxAttempts})`);
      await sleep(delay, req.signal);
    }
  }

  private async followRedirects(req: TransportRequest, deadline: AttemptDeadline): Promise<TransportResponse> {
    const origin = req.url.origin;
    let url = req.url;
    let method = req.method;
    let body = req.body;
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === origin;
      const headers: Record<string, string | string[]> = { 'user-agent': this.userAgent };
      if (sameOrigin) for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = typeof v === 'string' ? v : [...v];
      if (req.range !== undefined) headers['range'] = req.range;
      const started = Date.now();
      const res = await request(url, {
        method,
        headers,
        body,
        signal: deadline.signal,
        dispatcher: this.dispatcher(req, sameOrigin),
        headersTimeout: this.timeouts.headersMs,
        bodyTimeout: this.timeouts.bodyMs,
      });
      this.logger.debug(`${method} ${redactUrl(url)} -> ${res.statusCode} (${Date.now() - started} ms)`);
      const location = res.headers['location'];
      if (!REDIRECTS.has(res.statusCode) || typeof location !== 'string') {
        const body = res.body;
        deadline.watch(body);
        return { statusCode: res.statusCode, headers: res.headers, body, chunks: () => deadline.chunks(body), url };
      }
      discard(res.body);
      if (hop >= MAX_REDIRECTS) {
        throw new RegistryRequestError(`${req.method} ${redactUrl(req.url)}: more than ${MAX_REDIRECTS} redirects`, { status: res.statusCode });
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (err) {
        throw new RegistryProtocolError(`${method} ${redactUrl(url)}: invalid redirect location`, { cause: err });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new RegistryProtocolError(`${method} ${redactUrl(url)}: redirect to unsupported scheme ${next.protocol}`);
      }
      if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')) {
        if (method !== 'HEAD') method = 'GET';
        body = undefined;
      }
      if (body !== undefined && next.origin !== origin) {
        throw new RegistryRequestError(`${method} ${redactUrl(req.url)}: refusing to send a request body to another origin (${next.origin})`, { status: res.statusCode });
      }
      url = next;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.agent.close(), ...[...this.tlsAgents.values()].map((a) => a.close())]);
  }
}
