/** A NetworkPolicy (or Pod, Namespace) the API would refuse; `path` names the field as kubectl would. */
export class PolicyError extends Error {
  readonly code = 'ERR_BVCNI_POLICY_INVALID';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'PolicyError';
  }
}
