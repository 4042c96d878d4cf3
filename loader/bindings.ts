// Bound libbpf and libc functions, declared once and created on first use so
// that a process that never loads an object (the CNI plugin's VERSION) pays
// nothing for them.
import { koffi, libbpf, libc } from './ffi.js';
import { libc as libcCalls } from './libc.js';

type Fn = (...args: unknown[]) => unknown;

function declare<const T extends Record<string, string>>(
  lib: () => ReturnType<typeof libbpf>,
  protos: T,
): () => { [K in keyof T]: Fn } {
  let bound: { [K in keyof T]: Fn } | undefined;
  return () => {
    if (!bound) {
      const l = lib();
      const out = {} as Record<string, Fn>;
      for (const [name, proto] of Object.entries(protos)) out[name] = l.func(proto) as Fn;
      bound = out as { [K in keyof T]: Fn };
    }
    return bound;
  };
}

let opaquesDeclared = false;
function declareOpaques(): void {
  if (opaquesDeclared) return;
  const k = koffi();
  k.opaque('bpf_object');
  k.opaque('bpf_map');
  k.opaque('bpf_program');
  opaquesDeclared = true;
}

const libbpfWithTypes = () => {
  declareOpaques();
  return libbpf();
};

/** Map and object-file calls: the libbpf API proper. */
export const bpf = declare(libbpfWithTypes, {
  bpf_object__open_file: 'bpf_object *bpf_object__open_file(const char *path, void *opts)',
  bpf_object__load: 'int bpf_object__load(bpf_object *obj)',
  bpf_object__close: 'void bpf_object__close(bpf_object *obj)',
  bpf_object__next_map: 'bpf_map *bpf_object__next_map(bpf_object *obj, bpf_map *prev)',
  bpf_object__next_program: 'bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)',
  bpf_map__name: 'const char *bpf_map__name(bpf_map *map)',
  bpf_map__fd: 'int bpf_map__fd(bpf_map *map)',
  bpf_map__set_pin_path: 'int bpf_map__set_pin_path(bpf_map *map, const char *path)',
  bpf_map__is_internal: 'bool bpf_map__is_internal(bpf_map *map)',
  bpf_map__type: 'int bpf_map__type(bpf_map *map)',
  bpf_map__key_size: 'uint32_t bpf_map__key_size(bpf_map *map)',
  bpf_map__value_size: 'uint32_t bpf_map__value_size(bpf_map *map)',
  bpf_map__max_entries: 'uint32_t bpf_map__max_entries(bpf_map *map)',
  bpf_map__map_flags: 'uint32_t bpf_map__map_flags(bpf_map *map)',
  bpf_program__name: 'const char *bpf_program__name(bpf_program *prog)',
  bpf_program__section_name: 'const char *bpf_program__section_name(bpf_program *prog)',
  bpf_program__fd: 'int bpf_program__fd(bpf_program *prog)',
  bpf_obj_get: 'int bpf_obj_get(const char *path)',
  bpf_obj_pin: 'int bpf_obj_pin(int fd, const char *path)',
  bpf_obj_get_info_by_fd: 'int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)',
  bpf_map_update_elem: 'int bpf_map_update_elem(int fd, const uint8_t *key, const uint8_t *value, uint64_t flags)',
  bpf_map_lookup_elem: 'int bpf_map_lookup_elem(int fd, const uint8_t *key, _Out_ uint8_t *value)',
  bpf_map_delete_elem: 'int bpf_map_delete_elem(int fd, const uint8_t *key)',
  bpf_map_get_next_key: 'int bpf_map_get_next_key(int fd, const uint8_t *key, _Out_ uint8_t *next)',
  bpf_map_update_batch:
    'int bpf_map_update_batch(int fd, const uint8_t *keys, const uint8_t *values, _Inout_ uint32_t *count, const uint8_t *opts)',
  bpf_map_delete_batch: 'int bpf_map_delete_batch(int fd, const uint8_t *keys, _Inout_ uint32_t *count, const uint8_t *opts)',
  bpf_map_lookup_batch:
    'int bpf_map_lookup_batch(int fd, uint8_t *in_batch, _Out_ uint8_t *out_batch, _Out_ uint8_t *keys, _Out_ uint8_t *values, _Inout_ uint32_t *count, const uint8_t *opts)',
  bpf_tc_hook_create: 'int bpf_tc_hook_create(uint8_t *hook)',
  bpf_tc_hook_destroy: 'int bpf_tc_hook_destroy(uint8_t *hook)',
  bpf_tc_attach: 'int bpf_tc_attach(const uint8_t *hook, _Inout_ uint8_t *opts)',
  bpf_tc_detach: 'int bpf_tc_detach(const uint8_t *hook, const uint8_t *opts)',
  bpf_tc_query: 'int bpf_tc_query(const uint8_t *hook, _Inout_ uint8_t *opts)',
  bpf_link_create: 'int bpf_link_create(int prog_fd, int target_fd, int attach_type, const uint8_t *opts)',
  bpf_link_update: 'int bpf_link_update(int link_fd, int new_prog_fd, const uint8_t *opts)',
  bpf_link_detach: 'int bpf_link_detach(int link_fd)',
  bpf_prog_attach_opts: 'int bpf_prog_attach_opts(int prog_fd, int target, uint32_t type, const uint8_t *opts)',
  bpf_prog_detach2: 'int bpf_prog_detach2(int prog_fd, int target, uint32_t type)',
  bpf_prog_query:
    'int bpf_prog_query(int target, uint32_t type, uint32_t query_flags, _Out_ uint32_t *attach_flags, _Out_ uint32_t *prog_ids, _Inout_ uint32_t *prog_cnt)',
  bpf_prog_get_fd_by_id: 'int bpf_prog_get_fd_by_id(uint32_t id)',
  libbpf_num_possible_cpus: 'int libbpf_num_possible_cpus()',
  libbpf_set_print: 'void *libbpf_set_print(void *fn)',
});

export const c = declare(libc, {
  fcntl: 'int fcntl(int fd, int cmd, int arg)',
  setns: 'int setns(int fd, int nstype)',
  getsockopt: 'int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)',
  if_nametoindex: 'unsigned int if_nametoindex(const char *name)',
  vsnprintf: 'int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)',
});

const F_DUPFD_CLOEXEC = 1030;

/** A close-on-exec duplicate, so a handle can outlive the object it came from. */
export function dupFd(fd: number): number {
  const dup = c().fcntl(fd, F_DUPFD_CLOEXEC, 0) as number;
  if (dup < 0) throw new Error(`fcntl(F_DUPFD_CLOEXEC) failed: errno ${koffi().errno()}`);
  return dup;
}

export function closeFd(fd: number): void {
  libcCalls().close(fd);
}
