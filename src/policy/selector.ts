// Label selectors (metav1.LabelSelector): parsing with the API server's
// validation, and matching. matchLabels is folded into `In` requirements, as
// the API itself defines it, so one matcher serves both forms.
import { PolicyError } from './errors.js';
import type { Labels, Requirement, Selector, SelectorOp } from './types.js';

const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const OPS: readonly SelectorOp[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

export function isQualifiedName(key: string): boolean {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix)) return false;
  }
  return name.length > 0 && name.length <= 63 && NAME_RE.test(name);
}

export function isLabelValue(v: string): boolean {
  return v === '' || (v.length <= 63 && NAME_RE.test(v));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a LabelSelector; null/undefined is "not given" and is the caller's to interpret. */
export function parseSelector(raw: unknown, path: string): Selector {
  if (!isRecord(raw)) throw new PolicyError(path, 'must be a label selector object');
  const requirements: Requirement[] = [];
  const ml = raw.matchLabels;
  if (ml !== undefined && ml !== null) {
    if (!isRecord(ml)) throw new PolicyError(`${path}.matchLabels`, 'must be a map of strings');
    for (const [k, v] of Object.entries(ml)) {
      if (!isQualifiedName(k)) throw new PolicyError(`${path}.matchLabels`, `invalid label key ${JSON.stringify(k)}`);
      if (typeof v !== 'string' || !isLabelValue(v))
        throw new PolicyError(`${path}.matchLabels[${k}]`, `invalid label value ${JSON.stringify(v)}`);
      requirements.push({ key: k, op: 'In', values: [v] });
    }
  }
  const me = raw.matchExpressions;
  if (me !== undefined && me !== null) {
    if (!Array.isArray(me)) throw new PolicyError(`${path}.matchExpressions`, 'must be a list');
    me.forEach((e: unknown, i) => {
      const p = `${path}.matchExpressions[${i}]`;
      if (!isRecord(e)) throw new PolicyError(p, 'must be an object');
      const { key, operator, values } = e;
      if (typeof key !== 'string' || !isQualifiedName(key)) throw new PolicyError(`${p}.key`, `invalid label key ${JSON.stringify(key)}`);
      if (typeof operator !== 'string' || !OPS.includes(operator as SelectorOp))
        throw new PolicyError(`${p}.operator`, `must be one of ${OPS.join(', ')}, not ${JSON.stringify(operator)}`);
      const op = operator as SelectorOp;
      const vals = values === undefined || values === null ? [] : values;
      if (!Array.isArray(vals) || vals.some((v) => typeof v !== 'string' || !isLabelValue(v)))
        throw new PolicyError(`${p}.values`, 'must be a list of label values');
      if ((op === 'In' || op === 'NotIn') && vals.length === 0)
        throw new PolicyError(`${p}.values`, `must be non-empty when operator is ${op}`);
      if ((op === 'Exists' || op === 'DoesNotExist') && vals.length > 0)
        throw new PolicyError(`${p}.values`, `must be empty when operator is ${op}`);
      requirements.push({ key, op, values: [...(vals as string[])] });
    });
  }
  return { requirements };
}

export function matches(sel: Selector, labels: Labels): boolean {
  for (const r of sel.requirements) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    switch (r.op) {
      case 'In':
        if (!has || !r.values.includes(labels[r.key]!)) return false;
        break;
      case 'NotIn':
        // A missing key is "not in" any set, as in apimachinery's labels.Selector.
        if (has && r.values.includes(labels[r.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

export const EVERYTHING: Selector = { requirements: [] };
