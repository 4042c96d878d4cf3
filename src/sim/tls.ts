// Throwaway TLS material for the simulator's API server: a CA and a server
// certificate signed by it, made fresh for each run with the openssl CLI (Node
// can make keys but not X.509 certificates). A client that trusts the CA (the
// kubeconfig's certificate-authority-data) verifies the server as it would a
// real cluster's; one given another CA must refuse it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM text: the server's certificate and key, and the CA that signed it. */
export interface ServerTls {
  ca: string;
  cert: string;
  key: string;
}

/**
 * A CA and a server certificate for `names` (IP addresses or DNS names, all in
 * subjectAltName: clients match nothing else). Valid for a day; no file is left.
 */
export function makeServerTls(names: readonly string[], commonName = 'bvcni-sim-kube-apiserver'): ServerTls {
  if (names.length === 0) throw new Error('makeServerTls: the certificate needs at least one name');
  for (const n of names) {
    if (!isIP(n) && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(n)) throw new Error(`makeServerTls: ${JSON.stringify(n)} is neither an IP address nor a DNS name`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'bvcni-tls-'));
  try {
    const f = (name: string): string => join(dir, name);
    const openssl = (args: string[]): void => void execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=bvcni-sim-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    openssl(['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', `/CN=${commonName}`]);
    const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    writeFileSync(f('ext.cnf'), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
    openssl(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f('server.crt'), '-days', '1', '-extfile', f('ext.cnf')]);
    return { ca: readFileSync(f('ca.crt'), 'utf8'), cert: readFileSync(f('server.crt'), 'utf8'), key: readFileSync(f('server.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
