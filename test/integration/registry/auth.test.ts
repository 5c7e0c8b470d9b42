/**
 * Token and basic auth against real local servers: a registry that demands a bearer token from a
 * token server on another port (distribution's token authentication spec), with credentials from docker config.json data.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CriKeychain } from '../../../src/cri';
import { CredentialChain, DockerCredentials, RegistryAuthError, RegistryClient, RegistryClientOptions } from '../../../src/registry';
import { FAST_RETRY, TestRepository, TestServer, recordingLogger, sendError, serveRegistry } from './test-servers';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const PASSWORD = 's3cret-pass';
const REFRESH = 'refresh-XYZ-secret';

describe('registry auth', () => {
  let registry: TestServer;
  let tokens: TestServer;
  let repo: TestRepository;
  let image: ReturnType<TestRepository['addImage']>;
  const issued = new Set<string>();
  let tokenCounter = 0;
  let expiresIn: number | undefined;
  let postAllowed = true;
  let scheme: 'bearer' | 'basic' = 'bearer';
  const clients: RegistryClient[] = [];

  const client = (options: RegistryClientOptions) => {
    const c = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY, ...options });
    clients.push(c);
    return c;
  };
  const ref = () => `${registry.host}/team/app:v1`;

  const issue = (res: http.ServerResponse, field: 'token' | 'access_token') => {
    const token = `tok-${++tokenCounter}-${Math.random().toString(36).slice(2)}`;
    issued.add(token);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ [field]: token, ...(expiresIn ? { expires_in: expiresIn } : {}) }));
  };

  before(async () => {
    repo = new TestRepository();
    image = repo.addImage(['layer one bytes', 'x'.repeat(100_000)], 'v1');
    tokens = await TestServer.start((req, res, seen) => {
      const url = new URL(seen.url, 'http://x');
      if (url.pathname !== '/token') return void res.writeHead(404).end();
      if (req.method === 'POST') {
        if (!postAllowed) return void res.writeHead(405).end();
        const form = new URLSearchParams(seen.body);
        if (form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === REFRESH && form.get('service') === 'test-registry') return issue(res, 'access_token');
        return void res.writeHead(401).end('{"details":"bad refresh token"}');
      }
      const auth = req.headers.authorization;
      if (auth === undefined) return issue(res, 'token'); // anonymous pull is allowed
      if (auth === `Basic ${b64(`alice:${PASSWORD}`)}` || auth === `Basic ${b64(`bob:${REFRESH}`)}`) return issue(res, 'token');
      sendError(res, 401, 'UNAUTHORIZED', 'authentication required');
    });
    registry = await TestServer.start((req, res) => {
      const auth = req.headers.authorization ?? '';
      const ok = scheme === 'bearer' ? issued.has(auth.replace(/^Bearer /, '')) : auth === `Basic ${b64(`alice:${PASSWORD}`)}`;
      if (!ok) {
        const challenge =
          scheme === 'bearer'
            ? `Bearer realm="${tokens.origin}/token",service="test-registry",scope="repository:team/app:pull"`
            : 'Basic realm="test registry"';
        return sendError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': challenge });
      }
      if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
    });
  });

  beforeEach(() => {
    registry.seen.length = 0;
    tokens.seen.length = 0;
    expiresIn = undefined;
    postAllowed = true;
    scheme = 'bearer';
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await registry?.close();
    await tokens?.close();
  });

  it('gets a token with basic credentials, caches it per scope, and never logs a secret', async () => {
    const logger = recordingLogger();
    const creds = DockerCredentials.fromObject({ auths: { [`http://${registry.host}`]: { auth: b64(`alice:${PASSWORD}`) } } });
    const c = client({ credentials: creds, logger });
    const resolved = await c.resolve(ref());
    assert.equal(resolved.digest, image.manifest.digest);
    const config = await c.fetchConfig(resolved.reference, resolved.config);
    assert.deepEqual(config.diffIds, image.layers.map((l) => l.digest));
    const blob = await c.openBlob(resolved.reference, image.layers[1]!.digest);
    assert.deepEqual(await blob.readRange(10, 20), image.layers[1]!.data.subarray(10, 30));

    const tokenGets = tokens.requests(/^\/token$/);
    assert.equal(tokenGets.length, 1, 'one token for every request of the scope');
    const q = new URL(tokenGets[0]!.url, 'http://x').searchParams;
    assert.equal(q.get('service'), 'test-registry');
    assert.deepEqual(q.getAll('scope'), ['repository:team/app:pull']);
    assert.equal(tokenGets[0]!.headers.authorization, `Basic ${b64(`alice:${PASSWORD}`)}`);
    const unauthorized = registry.seen.filter((s) => !s.headers.authorization);
    assert.equal(unauthorized.length, 1, 'only the first request goes out without a token');
    assert.ok(registry.seen.slice(1).every((s) => /^Bearer tok-/.test(s.headers.authorization ?? '')));

    const log = logger.lines.join('\n');
    assert.ok(logger.lines.length > 0, 'the client does log');
    for (const secret of [PASSWORD, b64(`alice:${PASSWORD}`), ...issued, 'Bearer', 'Basic', 'authorization']) {
      assert.ok(!log.toLowerCase().includes(secret.toLowerCase()), `log must not contain ${secret.slice(0, 6)}…`);
    }
  });

  it('renews a token when it expires', async () => {
    expiresIn = 1;
    const c = client({ credentials: DockerCredentials.fromObject({ auths: { [registry.host]: { username: 'alice', password: PASSWORD } } }) });
    await c.resolve(ref());
    await c.resolve(ref());
    assert.equal(tokens.requests(/^\/token$/).length, 1);
    await new Promise((r) => setTimeout(r, 1100));
    await c.resolve(ref());
    assert.equal(tokens.requests(/^\/token$/).length, 2);
  });

  it('exchanges an identity token with a POST, and falls back to GET when POST is refused', async () => {
    const creds = DockerCredentials.fromObject({ auths: { [registry.host]: { username: 'bob', identitytoken: REFRESH } } });
    await client({ credentials: creds }).resolve(ref());
    const posts = tokens.seen.filter((s) => s.method === 'POST');
    assert.equal(posts.length, 1);
    assert.equal(posts[0]!.headers['content-type'], 'application/x-www-form-urlencoded');
    const form = new URLSearchParams(posts[0]!.body);
    assert.equal(form.get('grant_type'), 'refresh_token');
    assert.equal(form.get('scope'), 'repository:team/app:pull');
    assert.equal(form.get('client_id'), 'clip');
    assert.equal(tokens.seen.filter((s) => s.method === 'GET').length, 0);

    tokens.seen.length = 0;
    postAllowed = false;
    await client({ credentials: creds }).resolve(ref());
    assert.deepEqual(tokens.seen.map((s) => s.method), ['POST', 'GET']);
    assert.equal(tokens.seen[1]!.headers.authorization, `Basic ${b64(`bob:${REFRESH}`)}`);
  });

  it('fetches an anonymous token without credentials', async () => {
    await client({}).resolve(ref());
    const gets = tokens.requests(/^\/token$/);
    assert.equal(gets.length, 1);
    assert.equal(gets[0]!.headers.authorization, undefined);
  });

  it('fails with RegistryAuthError, without the secret in the message, when the token server refuses', async () => {
    const creds = DockerCredentials.fromObject({ auths: { [registry.host]: { username: 'alice', password: 'wrong-password-123' } } });
    await assert.rejects(client({ credentials: creds }).resolve(ref()), (err: Error) => {
      assert.ok(err instanceof RegistryAuthError, `${err.name}: ${err.message}`);
      assert.match(err.message, /token request denied/);
      assert.ok(!err.message.includes('wrong-password-123'));
      return true;
    });
  });

  it('sends a registry token as is', async () => {
    const token = `tok-static-${Date.now()}`;
    issued.add(token);
    await client({ credentials: DockerCredentials.fromObject({ auths: { [registry.host]: { registrytoken: token } } }) }).resolve(ref());
    assert.equal(tokens.seen.length, 0);
    assert.equal(registry.seen.at(-1)!.headers.authorization, `Bearer ${token}`);
  });

  it('answers a Basic challenge, and retries only once with wrong credentials', async () => {
    scheme = 'basic';
    const good = client({ credentials: DockerCredentials.fromObject({ auths: { [registry.host]: { username: 'alice', password: PASSWORD } } }) });
    assert.equal((await good.resolve(ref())).digest, image.manifest.digest);
    await good.resolve(ref());
    assert.equal(registry.seen.filter((s) => !s.headers.authorization).length, 1, 'basic auth is sent up front after the first challenge');

    registry.seen.length = 0;
    const bad = client({ credentials: DockerCredentials.fromObject({ auths: { [registry.host]: { username: 'alice', password: 'nope' } } }) });
    await assert.rejects(bad.resolve(ref()), RegistryAuthError);
    assert.equal(registry.seen.length, 2, 'one anonymous request, one retry with credentials');

    await assert.rejects(client({}).resolve(ref()), /requires basic authentication/);
  });

  it('asks for credentials again after a refusal: a newer CRI pull replaces expired ones without a restart', async () => {
    scheme = 'basic';
    const keychain = new CriKeychain();
    const docker = DockerCredentials.fromObject({ auths: { [registry.host]: { username: 'alice', password: 'stale' } } });
    const c = client({ credentials: new CredentialChain(keychain, docker) });
    keychain.remember(ref(), { username: 'alice', password: 'expired' });
    await assert.rejects(c.resolve(ref()), RegistryAuthError);
    keychain.remember(ref(), { username: 'alice', password: PASSWORD });
    assert.equal((await c.resolve(ref())).digest, image.manifest.digest);
    assert.equal(registry.seen.at(-1)!.headers.authorization, `Basic ${b64(`alice:${PASSWORD}`)}`);
  });

  it('uses keychain credentials only for the repository they were given for, then the docker config', async () => {
    scheme = 'basic';
    const keychain = new CriKeychain();
    keychain.remember(`${registry.host}/other/repo:v1`, { username: 'alice', password: PASSWORD });
    await assert.rejects(client({ credentials: new CredentialChain(keychain) }).resolve(ref()), /requires basic authentication/);
    const docker = DockerCredentials.fromObject({ auths: { [registry.host]: { username: 'alice', password: PASSWORD } } });
    assert.equal((await client({ credentials: new CredentialChain(keychain, docker) }).resolve(ref())).digest, image.manifest.digest);
  });
});
