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

const LIST_PAGE = 500;

export function nodeApi(kc: KubeConfig): NodeApi {
  const core = kc.makeApiClient(CoreV1Api);
  const watcher = new Watch(kc);
  return {
    async list(): Promise<NodeListResult> {
      // Paged, so the full objects of a large cluster never sit in memory at once
      // (only their slim copies do). An expired continue token is a 410: the
      // informer relists from scratch.
      const items: NodeLike[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await core.listNode({ limit: LIST_PAGE, _continue: cont });
        for (const n of page.items) items.push(slimNode(n));
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        cont = page.metadata?._continue || undefined;
      } while (cont);
      return { items, resourceVersion };
    },
    async watch(resourceVersion, onEvent, onDone): Promise<WatchHandle> {
      const ctl = await watcher.watch(
        '/api/v1/nodes',
        { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds() },
        (type: string, obj: unknown) => onEvent(type, type === 'ERROR' ? obj : slimNode(obj as NodeLike)),
        (err: unknown) => onDone(err),
      );
      return { abort: () => ctl.abort() };
    },
  };
}

/** GET one Node; undefined when it does not exist (404). */
export function nodeGetter(kc: KubeConfig): (name: string) => Promise<NodeLike | undefined> {
  const core = kc.makeApiClient(CoreV1Api);
  return async (name) => {
    try {
      return slimNode(await core.readNode({ name }));
    } catch (e) {
      if ((e as { code?: unknown }).code === 404) return undefined;
      throw e;
    }
  };
}

/**
 * Only the fields the daemon reads: a 5,000-node cluster's Node objects
 * (images, conditions, managedFields) would otherwise dominate its memory.
 */
export function slimNode(n: NodeLike): NodeLike {
  const m = n.metadata;
  return {
    metadata: { name: m?.name, resourceVersion: m?.resourceVersion, creationTimestamp: m?.creationTimestamp },
    spec: { podCIDR: n.spec?.podCIDR, podCIDRs: n.spec?.podCIDRs },
    status: { addresses: n.status?.addresses?.map((a) => ({ type: a.type, address: a.address })) },
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
