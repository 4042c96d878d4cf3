// NetworkPolicy for bvcni: the API's objects parsed and validated, the reference
// evaluation, and the compiler to per-node lookup tables (README.md).
export * from './types.js';
export { PolicyError } from './errors.js';
export { parseSelector, matches, EVERYTHING } from './selector.js';
export { parseNetworkPolicy, parseNamespace, parsePod, parseNode, parseLabels, isPortName } from './parse.js';
export { StateIndex, evaluate, isAllowed, isEndpoint, type Verdict, type DirectionVerdict } from './model.js';
export * from './compile.js';
export { policyEntryKey, policyLookupKey, lpmCovers, POLICY_KEY_SIZE, POLICY_KEY_BITS } from './layout.js';
export { IncrementalCompiler, type FlushResult } from './incremental.js';
export { policyView, describeIdentity, describePorts, type PolicyView, type PolicyViewEntry } from './view.js';
