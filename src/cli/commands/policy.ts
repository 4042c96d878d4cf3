// bvcnictl policy --pod NS/NAME: the NetworkPolicy rules in force for one local
// endpoint. bvcnid (--network-policy) says what it compiled (GET /policy on its
// loopback health listener: each entry with its peer identity described); the
// pinned maps say what is written (bvcni_policy's entries for the pod's
// address, its endpoint entry's identity and flags). Both are shown and
// compared: a difference is reported and exits 1 (a write in flight, or one
// that keeps failing: bvcni_policy_map_write_errors_total).
import { CliError, toJson, type CommandSpec } from '../types.js';
import { Defaults } from '../../common/defaults.js';
import { formatTable } from '../../common/table.js';
import { EndpointFlags } from '../../dataplane/abi.js';
import { openPolicyMaps, policyEntryKey } from '../../dataplane/policy.js';
import type { PolicyView, PolicyViewEntry } from '../../policy/index.js';
import { daemonGet, requirePinDir } from '../inspect.js';

const keyText = (k: { prefixlen: number; identity: number; direction: number; proto: number; dport: number }): string =>
  `${k.direction}/${k.identity}/${k.proto}/${k.dport}/${k.prefixlen}`;

export const policy: CommandSpec = {
  name: 'policy',
  description: 'NetworkPolicy rules in force for one pod (from bvcnid, checked against the pinned maps)',
  options: [
    { flags: '--pod <namespace/name>', description: 'the pod (a local endpoint of this node)' },
    { flags: '--health-addr <host:port>', description: "bvcnid's health listener, which serves /policy", defaultValue: Defaults.healthAddr },
  ],
  async run(opts) {
    const pod = typeof opts.pod === 'string' ? opts.pod : '';
    if (!/^[^/\s]+\/[^/\s]+$/.test(pod)) throw new CliError(`--pod must be NAMESPACE/NAME${pod ? `, not ${JSON.stringify(pod)}` : ''}`, 'e.g. bvcnictl policy --pod default/web-0', 2);
    requirePinDir(opts.pinDir);
    const r = await daemonGet(String(opts.healthAddr), `/policy?pod=${encodeURIComponent(pod)}`, opts.netns);
    if ('error' in r) throw new CliError(`bvcnid is not answering: ${r.error}`, 'is bvcnid running on this node? (--health-addr)');
    let body: PolicyView | { error: string };
    try {
      body = JSON.parse(r.body) as PolicyView | { error: string };
    } catch {
      throw new CliError(`bvcnid answered /policy with ${r.status} and no JSON`);
    }
    if ('error' in body) throw new CliError(body.error, r.status === 404 && /not enabled/.test(body.error) ? 'start bvcnid with --network-policy' : undefined);
    const view = body;

    // What is written.
    let inMap: Set<string>;
    let endpoint: { identity: number; flags: number } | undefined;
    try {
      using m = openPolicyMaps(opts.pinDir);
      inMap = new Set([...m.policy.keys()].filter((k) => k.endpoint === view.ip).map(keyText));
      const e = m.endpoints.lookup({ ip: view.ip });
      endpoint = e && { identity: Number(e.identity), flags: Number(e.flags) };
    } catch (e) {
      throw new CliError(`cannot read the policy maps in ${opts.pinDir}: ${(e as Error).message}`, 'run bvcnictl doctor');
    }
    const problems: string[] = [];
    const rows: (PolicyViewEntry & { direction: 'ingress' | 'egress'; written: boolean })[] = [];
    for (const dir of ['ingress', 'egress'] as const)
      for (const e of view[dir].entries) {
        const k = keyText(policyEntryKey(view.ip, dir, e));
        const written = inMap.delete(k);
        if (!written) problems.push(`${dir} ${e.peerText} ${e.portText}: compiled, not in bvcni_policy`);
        rows.push({ ...e, direction: dir, written });
      }
    for (const k of inMap) problems.push(`bvcni_policy holds ${k} (direction/identity/proto/port/prefixlen) for ${view.ip}: not compiled`);
    const flags = endpoint?.flags ?? 0;
    const written = {
      identity: endpoint?.identity ?? null,
      pending: (flags & EndpointFlags.policy_pending) !== 0,
      ingressIsolated: (flags & EndpointFlags.ingress_isolated) !== 0,
      egressIsolated: (flags & EndpointFlags.egress_isolated) !== 0,
    };
    if (!endpoint) problems.push(`no bvcni_endpoints entry for ${view.ip}`);
    else {
      if (written.identity !== view.identity) problems.push(`endpoint identity ${written.identity}, compiled ${view.identity}`);
      if (written.pending) problems.push('endpoint still ENDPOINT_F_POLICY_PENDING (fail closed)');
      if (written.ingressIsolated !== view.ingress.isolated) problems.push(`ingress isolation flag ${written.ingressIsolated}, compiled ${view.ingress.isolated}`);
      if (written.egressIsolated !== view.egress.isolated) problems.push(`egress isolation flag ${written.egressIsolated}, compiled ${view.egress.isolated}`);
    }
    const exitCode = problems.length ? 1 : 0;
    if (opts.json) return { output: toJson({ ...view, written, entries: rows, problems }), exitCode };
    const iso = (d: 'ingress' | 'egress'): string => (view[d].isolated ? 'isolated' : 'not isolated (everything allowed)');
    const head = [
      `pod ${view.pod}  ip ${view.ip}  identity ${view.identity} (${view.identityText})`,
      `ingress: ${iso('ingress')}; egress: ${iso('egress')}`,
      '',
    ].join('\n');
    const table = rows.length
      ? formatTable(
          ['DIRECTION', 'PEER', 'IDENTITY', 'PORTS', 'IN MAP'],
          rows.map((e) => [e.direction, e.peerText, String(e.peer), e.portText, e.written ? 'yes' : 'NO']),
        )
      : '(no allow entries)\n';
    const tail = problems.length ? `\nthe maps differ from what bvcnid compiled:\n${problems.map((p) => `  ${p}`).join('\n')}\n` : '';
    return { output: `${head}\n${table}${tail}`, exitCode };
  },
};
