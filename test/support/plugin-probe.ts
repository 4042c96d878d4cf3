// Proof that an installed plugin's Node part runs, not only its native front:
// the front answers VERSION itself, so a test that wants the Node plugin
// (bvcni.d/bvcni-node) to start asks what only it answers. ADD with
// BVCNI_NO_DAEMON=1 goes straight to it (never to a bvcnid socket), and with
// no CNI_CONTAINERID it fails in parseEnv, before touching anything: the
// spec's code 4 for missing variables.
export const NODE_PLUGIN_PROBE = {
  env: { CNI_COMMAND: 'ADD', BVCNI_NO_DAEMON: '1' } as Record<string, string>,
  input: '{"cniVersion":"1.0.0"}',
  /** The Node plugin's answer: code 4 naming the missing variables. */
  answer: /^\{"cniVersion":"1\.0\.0","code":4,"msg":"required env variables \[CNI_CONTAINERID/,
};

/** The probe's variables as `env -i` arguments, for a command run in a test node. */
export const nodePluginProbeArgs = (): string[] => Object.entries(NODE_PLUGIN_PROBE.env).map(([k, v]) => `${k}=${v}`);
