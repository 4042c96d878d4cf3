// STATUS (1.1.0): ready only when the dataplane is loaded and addresses remain.
import { formatCidr } from '../../common/cidr.js';
import type { Invocation } from '../context.js';
import { Code, CniError } from '../errors.js';
import { freeCount } from '../ipam/allocator.js';

export function cmdStatus({ conf, svc }: Invocation): void {
  const r = svc.dataplane.readiness(conf.pinDir);
  if (!r.ready) throw new CniError(Code.notAvailable, r.reason);
  const store = svc.store(conf);
  store.lock();
  try {
    if (freeCount(store, conf.podCidr) <= 0) throw new CniError(Code.notAvailable, `address pool ${formatCidr(conf.podCidr)} is exhausted`);
  } finally {
    store.unlock();
  }
}
