/**
 * Reads the certificate files a hosts.toml names (`ca`, `client`) and checks them, so a mistake is
 * reported against the hosts.toml when the host is looked up, not as an obscure TLS failure later.
 * Like hosts.toml itself, the files are read on every lookup: replaced certificates apply without a restart.
 */
import { X509Certificate } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import tls from 'node:tls';
import { InvalidArgumentError, errorMessage } from '../errors';
import { EndpointTls, TlsFiles } from './endpoint';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

async function readPem(file: string, what: string, source: string): Promise<string> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${source}: cannot read the ${what} ${file}: ${errorMessage(err)}`, { cause: err });
  }
}

/** The contents of `files`, checked; `source` (the hosts.toml) names them in errors. */
export async function loadHostTls(files: TlsFiles, source: string): Promise<EndpointTls> {
  const ca: string[] = [];
  for (const file of files.ca) {
    const pem = await readPem(file, 'CA certificate file', source);
    const certs = pem.match(PEM_CERTIFICATE) ?? [];
    if (certs.length === 0) throw new InvalidArgumentError(`${source}: the CA certificate file ${file} holds no PEM certificate`);
    for (const cert of certs) {
      try {
        new X509Certificate(cert);
      } catch (err) {
        throw new InvalidArgumentError(`${source}: the CA certificate file ${file} holds an invalid certificate: ${errorMessage(err)}`, { cause: err });
      }
    }
    ca.push(...certs);
  }
  const clientCertificates: Array<{ cert: string; key: string }> = [];
  for (const pair of files.client) {
    const cert = await readPem(pair.cert, 'client certificate file', source);
    const key = pair.key === undefined ? cert : await readPem(pair.key, 'client key file', source);
    try {
      tls.createSecureContext({ cert, key });
    } catch (err) {
      const names = pair.key === undefined ? pair.cert : `${pair.cert} and ${pair.key}`;
      throw new InvalidArgumentError(`${source}: the client certificate ${names} is not a usable certificate and key: ${errorMessage(err)}`, { cause: err });
    }
    clientCertificates.push({ cert, key });
  }
  return { ca, clientCertificates };
}
