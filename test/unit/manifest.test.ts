// deploy/bvcni.yaml: every object valid against the Kubernetes OpenAPI schemas
// (kubernetes-models), no field the API server would reject as unknown under
// `kubectl apply --validate=strict`, the API server's own cross-field rules that
// schemas cannot express, and RBAC exactly as narrow as issue 6 says.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments, isSeq, isScalar, type Document } from 'yaml';
import { Defaults as NodeDefaults } from '../../src/common/defaults.js';
import { runCli } from '../../src/cli/run.js';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';

const MANIFEST = fileURLToPath(new URL('../../deploy/bvcni.yaml', import.meta.url));

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

interface KindSpec {
  model: new (data: never) => { validate(): void };
  /** Definition id in the OpenAPI schema, and the schema module that registers it. */
  schemaId: string;
  schemaModule: string;
}

const KINDS: Record<string, KindSpec> = {
  'v1/ServiceAccount': {
    model: ServiceAccount as unknown as KindSpec['model'],
    schemaId: 'io.k8s.api.core.v1.ServiceAccount',
    schemaModule: '_schemas/IoK8sApiCoreV1ServiceAccount',
  },
  'rbac.authorization.k8s.io/v1/ClusterRole': {
    model: ClusterRole as unknown as KindSpec['model'],
    schemaId: 'io.k8s.api.rbac.v1.ClusterRole',
    schemaModule: '_schemas/IoK8sApiRbacV1ClusterRole',
  },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': {
    model: ClusterRoleBinding as unknown as KindSpec['model'],
    schemaId: 'io.k8s.api.rbac.v1.ClusterRoleBinding',
    schemaModule: '_schemas/IoK8sApiRbacV1ClusterRoleBinding',
  },
  'apps/v1/DaemonSet': {
    model: DaemonSet as unknown as KindSpec['model'],
    schemaId: 'io.k8s.api.apps.v1.DaemonSet',
    schemaModule: '_schemas/IoK8sApiAppsV1DaemonSet',
  },
};

function loadDocs(text: string): { docs: Document.Parsed[]; objects: Obj[] } {
  const docs = parseAllDocuments(text).filter((d): d is Document.Parsed => !('empty' in d) && d.contents !== null);
  for (const d of docs) assert.deepEqual(d.errors, [], 'YAML parse errors');
  return { docs, objects: docs.map((d) => d.toJS() as Obj) };
}

function kindKey(o: Obj): string {
  return `${String(o.apiVersion)}/${String(o.kind)}`;
}

function validateSchema(o: Obj): void {
  const spec = KINDS[kindKey(o)];
  if (!spec) throw new Error(`no schema known for ${kindKey(o)}`);
  new spec.model(o as never).validate();
}

// The models' schemas do not forbid unknown properties, but the API server (and
// `kubectl apply`, strict field validation by default) does. Capture the raw
// schemas the models register and walk the objects against them.
type Schema = {
  $ref?: string;
  oneOf?: Schema[];
  allOf?: Schema[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  type?: string | string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
};
const schemas = new Map<string, Schema>();
function loadRawSchemas(): void {
  if (schemas.size) return;
  // kubernetes-models does not export its _schemas for require(): load them by
  // path, with a require rooted in the package so they share our validate module.
  const modelFile = createRequire(import.meta.url).resolve('kubernetes-models/apps/v1/DaemonSet');
  const root = dirname(dirname(dirname(modelFile)));
  const require = createRequire(join(root, 'package.json'));
  const validate = require('@kubernetes-models/validate') as { register: (id: string, s: Schema) => void };
  const original = validate.register;
  validate.register = (id, s) => {
    schemas.set(id, s);
    original(id, s);
  };
  try {
    for (const spec of Object.values(KINDS)) (require(join(root, spec.schemaModule)) as { addSchema(): void }).addSchema();
  } finally {
    validate.register = original;
  }
}

function resolve(s: Schema): Schema {
  let cur = s;
  for (let i = 0; cur.$ref && i < 10; i++) {
    const next = schemas.get(cur.$ref.replace(/#$/, ''));
    if (!next) throw new Error(`schema ${cur.$ref} not captured`);
    cur = next;
  }
  return cur;
}

function unknownFields(value: Json, schema: Schema, path: string, out: string[]): string[] {
  let s = resolve(schema);
  if (s.oneOf) {
    const branch = s.oneOf.find((b) => b.type !== 'null');
    if (value === null || !branch) return out;
    s = resolve(branch);
  }
  for (const part of s.allOf ?? []) unknownFields(value, part, path, out);
  if (s['x-kubernetes-preserve-unknown-fields']) return out;
  if (Array.isArray(value)) {
    if (s.items) value.forEach((v, i) => unknownFields(v, s.items!, `${path}[${i}]`, out));
    return out;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const prop = s.properties?.[k];
      if (prop) unknownFields(v, prop, `${path}.${k}`, out);
      else if (typeof s.additionalProperties === 'object') unknownFields(v, s.additionalProperties, `${path}.${k}`, out);
      else if (s.properties) out.push(`${path}.${k}`);
    }
  }
  return out;
}

function strictCheck(o: Obj): string[] {
  loadRawSchemas();
  const spec = KINDS[kindKey(o)];
  if (!spec) throw new Error(`no schema known for ${kindKey(o)}`);
  return unknownFields(o, { $ref: spec.schemaId }, kindKey(o), []);
}

const asObj = (v: Json | undefined): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
const asArr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

// Rules the API server enforces in code (pkg/apis/core/validation), not in the schema.
function apiServerRules(ds: Obj): string[] {
  const errs: string[] = [];
  const spec = asObj(ds.spec);
  const tmpl = asObj(spec.template);
  const labels = asObj(asObj(tmpl.metadata).labels);
  for (const [k, v] of Object.entries(asObj(asObj(spec.selector).matchLabels)))
    if (labels[k] !== v) errs.push(`selector ${k}=${String(v)} does not match the template labels`);
  const pod = asObj(tmpl.spec);
  const all = [...asArr(pod.initContainers), ...asArr(pod.containers)].map(asObj);
  const volumes = new Set(asArr(pod.volumes).map((v) => asObj(v).name));
  for (const c of all) {
    const sc = asObj(c.securityContext);
    for (const m of asArr(c.volumeMounts).map(asObj)) {
      if (!volumes.has(m.name)) errs.push(`${String(c.name)}: mount of undeclared volume ${String(m.name)}`);
      if (m.mountPropagation === 'Bidirectional' && sc.privileged !== true)
        errs.push(`${String(c.name)}: Bidirectional mount propagation is allowed only for privileged containers`);
    }
    if (sc.allowPrivilegeEscalation === false) {
      if (sc.privileged === true) errs.push(`${String(c.name)}: privileged with allowPrivilegeEscalation false`);
      if (asArr(asObj(sc.capabilities).add).includes('CAP_SYS_ADMIN'))
        errs.push(`${String(c.name)}: CAP_SYS_ADMIN with allowPrivilegeEscalation false`);
    }
    if (pod.hostNetwork === true)
      for (const p of asArr(c.ports).map(asObj))
        if (p.hostPort !== undefined && p.hostPort !== p.containerPort)
          errs.push(`${String(c.name)}: with hostNetwork, hostPort must equal containerPort`);
  }
  return errs;
}

/** The capabilities bvcnid runs with, and what each is for (test/integration/daemon-privileges.test.ts finds each one needed). */
const BVCNID_CAPS = ['NET_ADMIN', 'SYS_ADMIN'];

const podSpec = (ds: Obj): Obj => asObj(asObj(asObj(ds.spec).template).spec);
const flagValue = (args: string[], flag: string): string | undefined => args.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);

// Least privilege (issue 13, item 5), as rules that return what is wrong, so each
// can be shown to fail on a broken copy.
function leastPrivilegeRules(ds: Obj): string[] {
  const errs: string[] = [];
  const pod = podSpec(ds);
  const hostPathOf = new Map(asArr(pod.volumes).map(asObj).map((v) => [String(v.name), asObj(v.hostPath).path] as const));
  const inits = asArr(pod.initContainers).map(asObj);
  const mains = asArr(pod.containers).map(asObj);
  const podSeccomp = asObj(asObj(pod.securityContext).seccompProfile).type;
  for (const c of [...inits, ...mains]) {
    const name = String(c.name);
    const sc = asObj(c.securityContext);
    if (sc.readOnlyRootFilesystem !== true) errs.push(`${name}: root filesystem not read-only`);
    const seccomp = asObj(sc.seccompProfile).type ?? podSeccomp;
    if (sc.privileged !== true && seccomp !== 'RuntimeDefault') errs.push(`${name}: seccomp ${String(seccomp ?? 'unset')}, not RuntimeDefault`);
    const binRw = asArr(c.volumeMounts)
      .map(asObj)
      .filter((m) => hostPathOf.get(String(m.name)) === '/opt/cni/bin' && m.readOnly !== true);
    const installs = asArr(c.args).map(String).includes('--install-cni');
    if (binRw.length > 0 && !installs) errs.push(`${name}: mounts /opt/cni/bin writable`);
  }
  // The plugin's install: one unprivileged init container, the only writer of /opt/cni/bin.
  const installers = inits.filter((c) => asArr(c.args).map(String).includes('--install-cni'));
  if (installers.length !== 1) errs.push(`${installers.length} init containers run --install-cni, not 1`);
  for (const c of installers) {
    const sc = asObj(c.securityContext);
    const caps = asObj(sc.capabilities);
    if (sc.privileged === true) errs.push(`${String(c.name)}: privileged`);
    if (JSON.stringify(caps.drop) !== '["ALL"]' || asArr(caps.add).length > 0) errs.push(`${String(c.name)}: capabilities other than none`);
    if (sc.allowPrivilegeEscalation !== false) errs.push(`${String(c.name)}: may escalate privileges`);
    const dir = flagValue(asArr(c.args).map(String), '--cni-bin-dir');
    const mount = asArr(c.volumeMounts)
      .map(asObj)
      .find((m) => m.mountPath === dir);
    if (!mount || hostPathOf.get(String(mount.name)) !== '/opt/cni/bin' || mount.readOnly === true)
      errs.push(`${String(c.name)}: --cni-bin-dir ${String(dir)} is not the host's /opt/cni/bin mounted writable`);
  }
  for (const c of mains) {
    const args = asArr(c.args).map(String);
    // Given a bin dir, bvcnid would install the plugin itself (and fail on the read-only mount).
    if (flagValue(args, '--cni-bin-dir') !== undefined) errs.push(`${String(c.name)}: given --cni-bin-dir`);
    const sc = asObj(c.securityContext);
    if (sc.privileged === true) errs.push(`${String(c.name)}: privileged`);
    const caps = asObj(sc.capabilities);
    if (JSON.stringify(caps.drop) !== '["ALL"]') errs.push(`${String(c.name)}: capabilities not dropped first`);
    const added = asArr(caps.add).map(String).sort();
    if (JSON.stringify(added) !== JSON.stringify([...BVCNID_CAPS].sort())) errs.push(`${String(c.name)}: capabilities ${added.join(',')}, not ${BVCNID_CAPS.join(',')}`);
  }
  return errs;
}

const text = readFileSync(MANIFEST, 'utf8');
const { docs, objects } = loadDocs(text);
const byKind = (kind: string): Obj => {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0]!;
};

describe('deploy/bvcni.yaml', () => {
  test('holds exactly the four objects kubectl apply needs, each valid against the OpenAPI schema', () => {
    assert.deepEqual(objects.map(kindKey).sort(), Object.keys(KINDS).sort());
    for (const o of objects) {
      assert.doesNotThrow(() => validateSchema(o), `${kindKey(o)} fails schema validation`);
      assert.deepEqual(strictCheck(o), [], `${kindKey(o)} has fields the API server does not know`);
    }
  });

  test('the validators reject broken objects (they are not vacuous)', () => {
    const ds = structuredClone(byKind('DaemonSet'));
    const c0 = asObj(asArr(asObj(asObj(asObj(ds.spec).template).spec).containers)[0]);
    c0.ports = [{ containerPort: 'ninety-ninety-nine' }];
    assert.throws(() => validateSchema(ds), /containerPort/);

    const noContainers = structuredClone(byKind('DaemonSet'));
    delete asObj(asObj(asObj(noContainers.spec).template).spec).containers;
    assert.throws(() => validateSchema(noContainers), /containers/);

    const typo = structuredClone(byKind('DaemonSet'));
    const m0 = asObj(asArr(asObj(asArr(asObj(asObj(asObj(typo.spec).template).spec).containers)[0]).volumeMounts)[0]);
    m0.mountPropogation = 'HostToContainer';
    assert.match(strictCheck(typo).join(','), /volumeMounts\[0\]\.mountPropogation/);

    const badRole = structuredClone(byKind('ClusterRole'));
    asObj(asArr(badRole.rules)[0]).verbs = 'get';
    assert.throws(() => validateSchema(badRole), /verbs/);
  });

  test('the API server rules schemas cannot express hold (and are checked)', () => {
    const ds = byKind('DaemonSet');
    assert.deepEqual(apiServerRules(ds), []);
    const broken = structuredClone(ds);
    const c0 = asObj(asArr(asObj(asObj(asObj(broken.spec).template).spec).containers)[0]);
    asObj(asArr(c0.volumeMounts).map(asObj).find((m) => m.name === 'bpffs')).mountPropagation = 'Bidirectional';
    assert.match(apiServerRules(broken).join('\n'), /Bidirectional/);
  });

  test('RBAC: exactly nodes get/list/watch and nodes/status patch, bound to the DaemonSet service account', () => {
    const role = byKind('ClusterRole');
    const granted = asArr(role.rules)
      .map(asObj)
      .flatMap((r) => {
        assert.equal(r.resourceNames, undefined);
        assert.equal(r.nonResourceURLs, undefined);
        return asArr(r.apiGroups).flatMap((g) =>
          asArr(r.resources).flatMap((res) => asArr(r.verbs).map((v) => `${String(g)}|${String(res)}|${String(v)}`)),
        );
      })
      .sort();
    assert.deepEqual(granted, ['|nodes/status|patch', '|nodes|get', '|nodes|list', '|nodes|watch']);
    assert.equal(role.aggregationRule, undefined);

    const sa = byKind('ServiceAccount');
    const saMeta = asObj(sa.metadata);
    const binding = byKind('ClusterRoleBinding');
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: asObj(role.metadata).name });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: saMeta.name, namespace: saMeta.namespace }]);
    const ds = byKind('DaemonSet');
    assert.equal(asObj(ds.metadata).namespace, 'kube-system');
    assert.equal(saMeta.namespace, 'kube-system');
    assert.equal(asObj(asObj(asObj(ds.spec).template).spec).serviceAccountName, saMeta.name);
  });

  test('DaemonSet: runs on every node first, host network, probes, requests, rolling update', () => {
    const ds = byKind('DaemonSet');
    const spec = asObj(ds.spec);
    assert.deepEqual(spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    const pod = asObj(asObj(spec.template).spec);
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.equal(pod.hostNetwork, true);
    assert.notEqual(pod.hostPID, true);
    // Every taint: an Exists toleration with no key and no effect matches all of them.
    assert.ok(
      asArr(pod.tolerations).map(asObj).some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined),
      'a toleration for every taint',
    );
    const containers = asArr(pod.containers).map(asObj);
    assert.equal(containers.length, 1);
    const c = containers[0]!;
    const env = asArr(c.env).map(asObj);
    assert.deepEqual(env.find((e) => e.name === 'NODE_NAME')?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.equal(asObj(asObj(c.livenessProbe).httpGet).path, '/healthz');
    assert.equal(asObj(asObj(c.readinessProbe).httpGet).path, '/readyz');
    assert.equal(asObj(asObj(c.livenessProbe).httpGet).port, 9099);
    assert.equal(asObj(asObj(c.readinessProbe).httpGet).port, 9099);
    // Off the pod network: health and metrics on the node's loopback, where the kubelet's probes look, and no port declared.
    const args = asArr(c.args).map(String);
    assert.ok(args.includes('--health-addr=127.0.0.1:9099'), 'daemon listens where the probes look, on loopback');
    for (const probe of [c.livenessProbe, c.readinessProbe]) assert.equal(asObj(asObj(probe).httpGet).host, '127.0.0.1');
    const metricsAddr = args.find((a) => a.startsWith('--metrics-addr='));
    assert.ok(metricsAddr && /^--metrics-addr=(127\.0\.0\.1:\d+|none)$/.test(metricsAddr), `metrics off the pod network by default (${metricsAddr})`);
    for (const ctr of [...asArr(pod.initContainers), ...containers].map(asObj)) assert.equal(ctr.ports, undefined, `${String(ctr.name)} declares no port (no hostPort)`);
    // bvcnid accepts these args (the bounds' consistency included): it gets as far as the kubeconfig.
    const r = spawnSync(process.execPath, ['dist/bin/bvcnid', '--node-name', 'n', '--kubeconfig', '/nonexistent/kubeconfig', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stdout, /cannot load the kubeconfig/, r.stdout + r.stderr);
    for (const ctr of [...asArr(pod.initContainers), ...containers].map(asObj)) {
      const req = asObj(asObj(ctr.resources).requests);
      assert.ok(req.cpu && req.memory, `${String(ctr.name)} has cpu and memory requests`);
      assert.equal(ctr.image, c.image, 'one image for all containers');
    }
  });

  test('DaemonSet: the long-running container has only the needed capabilities, each explained', () => {
    const ds = byKind('DaemonSet');
    const pod = asObj(asObj(asObj(ds.spec).template).spec);
    const c = asObj(asArr(pod.containers)[0]);
    const sc = asObj(c.securityContext);
    assert.notEqual(sc.privileged, true);
    assert.deepEqual(asObj(sc.capabilities).drop, ['ALL']);
    const added = asArr(asObj(sc.capabilities).add).map(String);
    assert.deepEqual([...added].sort(), BVCNID_CAPS);
    // The reasons the experiment found (not the old, wrong one: BPF_*_GET_FD_BY_ID).
    const dsText = text.slice(text.indexOf('kind: DaemonSet'));
    assert.match(dsText, /SYS_ADMIN: setns\(\) into a pod's network namespace/);
    assert.doesNotMatch(dsText, /SYS_ADMIN: BPF_PROG_GET_FD_BY_ID/);

    // "say in a comment why each is needed": the comment above each capability names it.
    const dsDoc = docs.find((d) => (d.toJS() as Obj).kind === 'DaemonSet')!;
    const addNode = dsDoc.getIn(['spec', 'template', 'spec', 'containers', 0, 'securityContext', 'capabilities', 'add'], true);
    assert.ok(isSeq(addNode));
    for (const [i, item] of addNode.items.entries()) {
      assert.ok(isScalar(item));
      // yaml attaches the comment above a sequence's first item to the sequence.
      const why = item.commentBefore ?? (i === 0 ? addNode.commentBefore : undefined) ?? '';
      assert.match(why, new RegExp(`\\b${String(item.value)}\\b`), `a comment explains ${String(item.value)}`);
      assert.ok(why.length > String(item.value).length + 20, `the comment on ${String(item.value)} says why`);
    }

    // Privilege only in the one-shot init container that needs it (Bidirectional bpffs mount).
    for (const ic of asArr(pod.initContainers).map(asObj)) {
      if (asObj(ic.securityContext).privileged === true)
        assert.ok(
          asArr(ic.volumeMounts).map(asObj).some((m) => m.mountPropagation === 'Bidirectional'),
          `${String(ic.name)} is privileged only to mount bpffs for the host`,
        );
    }
  });

  test('DaemonSet: host paths for CNI conf and bin dirs, bpffs (propagated) and the state dir', () => {
    const ds = byKind('DaemonSet');
    const pod = asObj(asObj(asObj(ds.spec).template).spec);
    const hostPaths = new Map(
      asArr(pod.volumes)
        .map(asObj)
        .map((v) => [String(v.name), String(asObj(v.hostPath).path)] as const),
    );
    const c = asObj(asArr(pod.containers)[0]);
    const mounted = new Map(
      asArr(c.volumeMounts)
        .map(asObj)
        .map((m) => [hostPaths.get(String(m.name)), m] as const),
    );
    for (const p of ['/etc/cni/net.d', '/opt/cni/bin', '/sys/fs/bpf', '/var/lib/cni/bvcni'])
      assert.equal(asObj(mounted.get(p)).mountPath, p, `${p} mounted at the same path`);
    assert.equal(asObj(mounted.get('/opt/cni/bin')).readOnly, true, 'bvcnid reads /opt/cni/bin only (bvcnictl doctor)');
    for (const p of ['/etc/cni/net.d', '/var/lib/cni/bvcni']) assert.notEqual(asObj(mounted.get(p)).readOnly, true, `${p} writable`);
    assert.equal(asObj(mounted.get('/sys/fs/bpf')).mountPropagation, 'HostToContainer');
    const init = asArr(pod.initContainers).map(asObj);
    assert.ok(
      init.some((ic) =>
        asArr(ic.volumeMounts)
          .map(asObj)
          .some((m) => hostPaths.get(String(m.name)) === '/sys/fs/bpf' && m.mountPropagation === 'Bidirectional'),
      ),
      'bpffs is mounted with Bidirectional propagation where it may be created',
    );
  });
});

describe('deploy/bvcni.yaml: least privilege', () => {
  const ds = byKind('DaemonSet');
  const mutate = (f: (pod: Obj, byName: (n: string) => Obj) => void): string => {
    const copy = structuredClone(ds);
    const pod = podSpec(copy);
    const byName = (n: string): Obj => [...asArr(pod.initContainers), ...asArr(pod.containers)].map(asObj).find((c) => c.name === n)!;
    f(pod, byName);
    return leastPrivilegeRules(copy).join('\n');
  };

  test('an unprivileged init container installs the plugin; the long-running bvcnid cannot write /opt/cni/bin; exactly NET_ADMIN and SYS_ADMIN; seccomp RuntimeDefault; read-only roots', () => {
    assert.deepEqual(leastPrivilegeRules(ds), []);
    const pod = podSpec(ds);
    assert.deepEqual(
      asArr(pod.initContainers).map((c) => String(asObj(c).name)),
      ['prepare-node', 'install-cni'],
    );
  });

  test('each rule fails on a manifest that breaks it', () => {
    assert.match(mutate((_, c) => asArr(c('bvcnid').volumeMounts).map(asObj).forEach((m) => m.name === 'cni-bin' && delete m.readOnly)), /bvcnid: mounts \/opt\/cni\/bin writable/);
    assert.match(mutate((_, c) => asObj(asObj(c('bvcnid').securityContext).capabilities).add = ['NET_ADMIN', 'SYS_ADMIN', 'BPF']), /capabilities BPF,NET_ADMIN,SYS_ADMIN, not/);
    assert.match(mutate((_, c) => asObj(asObj(c('bvcnid').securityContext).capabilities).add = ['NET_ADMIN']), /capabilities NET_ADMIN, not/);
    assert.match(mutate((_, c) => delete asObj(asObj(c('bvcnid').securityContext).capabilities).drop), /bvcnid: capabilities not dropped first/);
    assert.match(mutate((_, c) => asObj(c('bvcnid').securityContext).privileged = true), /bvcnid: privileged/);
    assert.match(mutate((_, c) => asArr(c('bvcnid').args).push('--cni-bin-dir=/opt/cni/bin')), /bvcnid: given --cni-bin-dir/);
    assert.match(mutate((_, c) => delete asObj(c('install-cni').securityContext).readOnlyRootFilesystem), /install-cni: root filesystem not read-only/);
    assert.match(mutate((_, c) => asObj(c('bvcnid').securityContext).readOnlyRootFilesystem = false), /bvcnid: root filesystem not read-only/);
    assert.match(mutate((pod) => delete asObj(pod.securityContext).seccompProfile), /bvcnid: seccomp unset, not RuntimeDefault/);
    assert.match(mutate((_, c) => asObj(c('bvcnid').securityContext).seccompProfile = { type: 'Unconfined' }), /bvcnid: seccomp Unconfined/);
    assert.match(mutate((_, c) => asObj(asObj(c('install-cni').securityContext).capabilities).add = ['DAC_OVERRIDE']), /install-cni: capabilities other than none/);
    assert.match(mutate((_, c) => delete asObj(c('install-cni').securityContext).allowPrivilegeEscalation), /install-cni: may escalate/);
    assert.match(mutate((_, c) => (c('install-cni').args = ['--install-cni', '--cni-bin-dir=/usr/lib/cni'])), /install-cni: --cni-bin-dir \/usr\/lib\/cni is not the host's/);
    assert.match(mutate((pod) => (pod.initContainers = asArr(pod.initContainers).filter((c) => asObj(c).name !== 'install-cni'))), /0 init containers run --install-cni/);
  });

  test("install-cni's and bvcnid's flags are bvcnid's own (a typo would crash-loop the pod)", () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../src/daemon/main.ts', import.meta.url)), '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const pod = podSpec(ds);
    for (const c of [...asArr(pod.initContainers), ...asArr(pod.containers)].map(asObj)) {
      if (asArr(c.command).length > 0) continue; // prepare-node runs its own script
      for (const a of asArr(c.args).map(String)) assert.ok(r.stdout.includes(`${a.split('=')[0]!} `), `bvcnid knows ${a} (${String(c.name)})`);
    }
    assert.ok(!r.stdout.includes('--no-such-flag '), 'control: the help does not list everything');
  });

  test('the paths, addresses and ranges it spells out are the defaults of src/common/defaults.ts', () => {
    const byFlag: Record<string, string> = {
      '--cluster-cidr': NodeDefaults.clusterCidr,
      '--service-cidr': NodeDefaults.serviceCidr,
      '--pin-dir': NodeDefaults.pinDir,
      '--cni-conf-dir': NodeDefaults.cniConfDir,
      '--cni-bin-dir': NodeDefaults.cniBinDir,
      '--state-dir': NodeDefaults.stateDir,
      '--health-addr': NodeDefaults.healthAddr,
    };
    const pod = podSpec(ds);
    const args = [...asArr(pod.initContainers), ...asArr(pod.containers)].map(asObj).flatMap((c) => asArr(c.args).map(String));
    const differing = (list: string[]): string[] =>
      list.filter((a) => {
        const [flag, value] = a.split('=') as [string, string | undefined];
        return flag in byFlag && value !== byFlag[flag];
      });
    const named = args.filter((a) => a.split('=')[0]! in byFlag).map((a) => a.split('=')[0]!);
    assert.deepEqual([...new Set(named)].sort(), Object.keys(byFlag).sort(), 'every one of them is spelled out');
    assert.deepEqual(differing(args), []);
    assert.deepEqual(differing([...args, '--pin-dir=/sys/fs/bpf/other']), ['--pin-dir=/sys/fs/bpf/other'], 'control: a changed value is seen');
    const script = asArr(asObj(asArr(pod.initContainers).map(asObj).find((c) => asArr(c.command).length > 0)).command).map(String).join(' ');
    assert.ok(script.includes(`${NodeDefaults.natPortMin}-${NodeDefaults.natPortMax}`), "prepare-node reserves bvcnid's NAT port range");
  });
});

describe('deploy/bvcni.yaml init script', () => {
  const ds = byKind('DaemonSet');
  const init = asArr(asObj(asObj(asObj(ds.spec).template).spec).initContainers).map(asObj)[0]!;
  const argv = asArr(init.command).map(String);

  test('is a /bin/sh -ec script that parses', () => {
    assert.deepEqual(argv.slice(0, 2), ['/bin/sh', '-ec']);
    const r = spawnSync('sh', ['-n', '-c', argv[2]!], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
  // Run in a network namespace, so in test/integration/manifest-init.test.ts.
});

describe('deploy/bvcni-uninstall.yaml', () => {
  const file = fileURLToPath(new URL('../../deploy/bvcni-uninstall.yaml', import.meta.url));
  const objs = loadDocs(readFileSync(file, 'utf8')).objects;

  test('only a DaemonSet, valid against the schema, the strict field check and the API server rules', () => {
    assert.deepEqual(objs.map(kindKey), ['apps/v1/DaemonSet']);
    const ds = objs[0]!;
    assert.doesNotThrow(() => validateSchema(ds));
    assert.deepEqual(strictCheck(ds), []);
    assert.deepEqual(apiServerRules(ds), []);
    const pod = asObj(asObj(asObj(ds.spec).template).spec);
    assert.equal(pod.automountServiceAccountToken, false, 'no API access');
    assert.ok(asArr(pod.tolerations).map(asObj).some((t) => t.operator === 'Exists' && t.key === undefined));
    for (const c of [...asArr(pod.initContainers), ...asArr(pod.containers)].map(asObj))
      assert.notEqual(asObj(c.securityContext).privileged, true, `${String(c.name)} unprivileged`);
  });

  test('runs bvcnictl uninstall --yes on the directories bvcnid uses, with flags bvcnictl knows', async () => {
    const ds = objs[0]!;
    const init = asObj(asArr(asObj(asObj(asObj(ds.spec).template).spec).initContainers)[0]);
    const argv = asArr(init.command).map(String);
    assert.deepEqual(argv.slice(0, 3), ['bvcnictl', 'uninstall', '--yes']);
    const main = byKind('DaemonSet');
    const daemonArgs = asArr(asObj(asArr(asObj(asObj(asObj(main.spec).template).spec).containers)[0]).args).map(String);
    const installArgs = asArr(podSpec(main).initContainers)
      .map(asObj)
      .flatMap((c) => asArr(c.args).map(String))
      .filter((a) => a.startsWith('--cni-bin-dir='));
    for (const [flag, where] of [['--pin-dir', daemonArgs], ['--cni-conf-dir', daemonArgs], ['--cni-bin-dir', installArgs]] as const) {
      const mine = argv.find((a) => a.startsWith(`${flag}=`));
      assert.ok(mine, `${flag} given`);
      assert.equal(mine, where.find((a) => a.startsWith(`${flag}=`)), `${flag} as the DaemonSet has it`);
    }
    assert.equal(init.image, asObj(asArr(asObj(asObj(asObj(main.spec).template).spec).containers)[0]).image);
    const help = await runCli(['uninstall', '--help']);
    for (const a of argv.slice(2)) assert.ok(help.output.includes(a.split('=')[0]!), `bvcnictl uninstall knows ${a}`);
  });
});
