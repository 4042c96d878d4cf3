// The CNI side of NetworkPolicy: the conflist's networkPolicy flag (what makes
// the plugin register endpoints fail-closed), CNI_ARGS' K8S_POD_NAMESPACE and
// K8S_POD_NAME, and bvcnid's socket calling its after-ADD hook with the pod and
// its address before the plugin gets the answer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseConfig } from '../../src/cni/config.js';
import { k8sPodOf } from '../../src/cni/env.js';
import { conflistText } from '../../src/kube/install.js';
import { endpointFlags } from '../../src/dataplane/endpoint.js';
import { EndpointFlags } from '../../src/dataplane/abi.js';
import { CniServer } from '../../src/daemon/cni-server.js';
import { delegate } from '../../src/cni/delegate.js';

const base = { cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24' };

test('networkPolicy in the config: true, false or absent; anything else is a clear error', () => {
  assert.equal(parseConfig(JSON.stringify(base)).networkPolicy, false);
  assert.equal(parseConfig(JSON.stringify({ ...base, networkPolicy: true })).networkPolicy, true);
  assert.equal(parseConfig(JSON.stringify({ ...base, networkPolicy: false })).networkPolicy, false);
  assert.throws(() => parseConfig(JSON.stringify({ ...base, networkPolicy: 'yes' })), /networkPolicy.*true or false/);
});

test('bvcnid writes networkPolicy into the conflist only with --network-policy', () => {
  const c = { podCidr: '10.244.1.0/24', bridge: 'cni0', mtu: 1450, dataDir: '/d', pinDir: '/p' };
  assert.equal((JSON.parse(conflistText(c)) as { plugins: { networkPolicy?: boolean }[] }).plugins[0]!.networkPolicy, undefined);
  const on = JSON.parse(conflistText({ ...c, networkPolicy: true })) as { plugins: Record<string, unknown>[] };
  assert.equal(on.plugins[0]!.networkPolicy, true);
  assert.equal(parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', ...on.plugins[0] })).networkPolicy, true);
});

test('an endpoint registered with enforcement on is ENDPOINT_F_POLICY_PENDING', () => {
  assert.equal(endpointFlags('veth', false, true) & EndpointFlags.policy_pending, EndpointFlags.policy_pending);
  assert.equal(endpointFlags('veth', false, false) & EndpointFlags.policy_pending, 0);
  assert.equal(endpointFlags('netkit', true, true), EndpointFlags.pod | EndpointFlags.netkit | EndpointFlags.hostport | EndpointFlags.policy_pending);
});

test('K8S_POD_NAMESPACE and K8S_POD_NAME from CNI_ARGS; missing either: none', () => {
  assert.deepEqual(k8sPodOf('IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc'), { namespace: 'shop', name: 'web-0' });
  assert.equal(k8sPodOf('K8S_POD_NAME=web-0'), undefined);
  assert.equal(k8sPodOf(''), undefined);
  assert.equal(k8sPodOf('K8S_POD_NAMESPACE=;K8S_POD_NAME=x'), undefined);
});

describe("bvcnid's socket calls the after-ADD hook before answering", () => {
  let dir: string;
  let server: CniServer;
  const events: string[] = [];
  const PIN = '/sys/fs/bpf/bvcni-unit-test';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bvcni-cnipol-'));
    server = new CniServer({
      stateDir: dir,
      pinDir: PIN,
      log: pino({ level: 'silent' }),
      handler: (env) => {
        events.push(`handler ${env.CNI_COMMAND}`);
        if (env.CNI_CONTAINERID === 'bad') return { stdout: '{"code":7}\n', exitCode: 1 };
        return { stdout: `${JSON.stringify({ cniVersion: '1.0.0', ips: [{ address: '10.244.1.7/24' }] })}\n`, exitCode: 0 };
      },
      onAdded: (a) => void events.push(`added ${a.pod?.namespace}/${a.pod?.name} ${a.ip} ${a.containerId}`),
      onDeleted: (a) => void events.push(`deleted ${a.pod?.namespace}/${a.pod?.name}`),
    });
    await server.start();
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bvcni', dataDir: '', pinDir: PIN });

  test('ADD: the hook gets the pod and its address, and runs before the answer; a failed ADD calls nothing', async () => {
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0' };
    const out = await delegate(env, conf.replace('""', JSON.stringify(dir)));
    events.push('answered');
    assert.equal(out?.exitCode, 0);
    assert.deepEqual(events, ['handler ADD', 'added shop/web-0 10.244.1.7 c1', 'answered']);
    events.length = 0;
    await delegate({ ...env, CNI_CONTAINERID: 'bad' }, conf.replace('""', JSON.stringify(dir)));
    assert.deepEqual(events, ['handler ADD']);
    events.length = 0;
    await delegate({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0' }, conf.replace('""', JSON.stringify(dir)));
    assert.deepEqual(events, ['handler DEL', 'deleted shop/web-0']);
  });
});
