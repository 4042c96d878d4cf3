// C baseline for test/bench/loader.bench.ts: the same map operations the
// TypeScript binding does, straight through libbpf, timed per operation.
// Usage: map-ops N ROUNDS  → prints "update_ns lookup_ns" medians over ROUNDS.
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/bpf.h>

struct key { unsigned int a, b; };
struct value { unsigned long long packets, bytes; };

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	double *upd = calloc(rounds, sizeof(double)), *lkp = calloc(rounds, sizeof(double));
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_c", sizeof(struct key), sizeof(struct value), 16384, NULL);
	if (fd < 0) { perror("bpf_map_create"); return 1; }
	for (int r = 0; r < rounds; r++) {
		struct key k = {0};
		struct value v = {0};
		double t0 = now_ns();
		for (int i = 0; i < n; i++) {
			k.a = i; k.b = i * 3; v.packets = i;
			if (bpf_map_update_elem(fd, &k, &v, BPF_ANY)) { perror("update"); return 1; }
		}
		double t1 = now_ns();
		for (int i = 0; i < n; i++) {
			k.a = i; k.b = i * 3;
			if (bpf_map_lookup_elem(fd, &k, &v)) { perror("lookup"); return 1; }
		}
		double t2 = now_ns();
		upd[r] = (t1 - t0) / n;
		lkp[r] = (t2 - t1) / n;
	}
	qsort(upd, rounds, sizeof(double), cmp);
	qsort(lkp, rounds, sizeof(double), cmp);
	printf("%.1f %.1f\n", upd[rounds / 2], lkp[rounds / 2]);
	return 0;
}
