// What the benchmarks' small C programs (tcp_crr.c, flood.c) share.
#ifndef BVCNI_BENCH_H
#define BVCNI_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void die(const char *what)
{
	perror(what);
	exit(2);
}

#endif
