// The daemon's only contact with @kubernetes/client-node: kubeconfig, the
// Node list/watch calls behind the informer, and the NetworkUnavailable
// condition. Kept to one module so the library's API churn stays here.
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { NodeApi, NodeListResult, WatchHandle } from './informer.js';
import type { NodeLike } from './desired.js';

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${path ?? '(in-cluster)'}: no current cluster`);
  return kc;
}

/**
 * Watches are recycled by the server after timeoutSeconds; the value is
 * jittered (as client-go does) so that a fleet of daemons does not reconnect
 * in lockstep.
 */
function watchTimeoutSeconds(): number {
  return 300 + Math.floor(Math.random() * 300);
}

export function nodeApi(kc: KubeConfig): NodeApi {
  const core = kc.makeApiClient(CoreV1Api);
  const watcher = new Watch(kc);
  return {
    async list(): Promise<NodeListResult> {
      const l = await core.listNode();
      return { items: l.items as NodeLike[], resourceVersion: l.metadata?.resourceVersion ?? '' };
    },
    async watch(resourceVersion, onEvent, onDone): Promise<WatchHandle> {
      const ctl = await watcher.watch(
        '/api/v1/nodes',
        { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds() },
        (type: string, obj: unknown) => onEvent(type, obj),
        (err: unknown) => onDone(err),
      );
      return { abort: () => ctl.abort() };
    },
  };
}

export interface ConditionPatcher {
  setNetworkAvailable(nodeName: string, message: string): Promise<void>;
}

export function conditionPatcher(kc: KubeConfig): ConditionPatcher {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async setNetworkAvailable(nodeName, message) {
      const now = new Date().toISOString();
      // Strategic merge: `conditions` merge by `type`, other conditions stay.
      const body = {
        status: {
          conditions: [
            {
              type: 'NetworkUnavailable',
              status: 'False',
              reason: 'BvcniIsUp',
              message,
              lastTransitionTime: now,
              lastHeartbeatTime: now,
            },
          ],
        },
      };
      await core.patchNodeStatus(
        { name: nodeName, body },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
    },
  };
}

/** A short description of a client-node error for logs and metric labels. */
export function describeApiError(err: unknown): { code: string; message: string } {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; statusCode?: unknown; message?: unknown; errno?: unknown };
    const code = typeof e.code === 'number' ? String(e.code) : typeof e.statusCode === 'number' ? String(e.statusCode) : typeof e.code === 'string' ? e.code : 'unknown';
    const message = typeof e.message === 'string' ? e.message.split('\n')[0]!.slice(0, 300) : String(err);
    return { code, message };
  }
  return { code: 'unknown', message: String(err) };
}
