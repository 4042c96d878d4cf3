// Short TCP connections (connect, one byte back, close), netperf TCP_CRR
// style but event-driven with many flows per process, as neper's tcp_crr: a
// connection then costs the kernel's TCP work and little else, so the path
// under test (NAT, forwarding) shows in the rate instead of being hidden by
// process wake-ups (a blocking client measured the same rate with and without
// NAT here) or by a runtime's per-connection work (Node.js: ~250 µs).
//
//   tcp_crr server PORT WORKERS
//     WORKERS processes accept on one listening socket; per connection: send
//     one byte, wait for the client's close, close. The client closes first,
//     so TIME_WAIT stays on the client's side, as with HTTP.
//   tcp_crr client HOST PORT MS PROCESSES FLOWS PATIENCE_MS
//     PROCESSES processes keep FLOWS connections each in flight until MS ms
//     passed: connect, read the byte, close, start the next. One not answered
//     within PATIENCE_MS counts as failed. Prints {"done":N,"failed":N,"elapsed":MS}.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_FDS 65536

static void serve(int port, int workers)
{
	int one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	// Listening before "ready" and before the workers exist: no client is ever refused.
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(ls, (struct sockaddr *)&addr, sizeof(addr)) || listen(ls, 4096))
		die("listen");
	for (int w = 0; w < workers; w++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid > 0)
			continue;
		// Workers never outlive the server process, however it ends.
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int ep = epoll_create1(0);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = ls };
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev))
			die("epoll");
		struct epoll_event evs[256];
		for (;;) {
			int n = epoll_wait(ep, evs, 256, -1);
			for (int i = 0; i < n; i++) {
				int fd = evs[i].data.fd;
				char b = 'x';
				if (fd == ls) {
					int s;
					while ((s = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
						struct epoll_event cev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = s };
						if (write(s, &b, 1) != 1 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &cev))
							close(s);
					}
					continue;
				}
				// The client's close (or reset): done with this one.
				if (read(fd, &b, 1) <= 0 || (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
					close(fd);
			}
		}
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

struct flows {
	int ep;
	struct sockaddr_in addr;
	long long started[MAX_FDS];
	long done, failed;
};

static void start_flow(struct flows *f)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s < 0 || s >= MAX_FDS) {
		if (s >= 0)
			close(s);
		f->failed++;
		return;
	}
	if (connect(s, (struct sockaddr *)&f->addr, sizeof(f->addr)) && errno != EINPROGRESS) {
		close(s);
		f->failed++;
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
	if (epoll_ctl(f->ep, EPOLL_CTL_ADD, s, &ev)) {
		close(s);
		f->failed++;
		return;
	}
	f->started[s] = now_ms();
}

static void finish_flow(struct flows *f, int fd, int ok)
{
	close(fd);
	f->started[fd] = 0;
	if (ok)
		f->done++;
	else
		f->failed++;
}

static void client_process(struct flows *f, int nflows, long long end, int patience_ms, int out)
{
	f->ep = epoll_create1(0);
	if (f->ep < 0)
		die("epoll");
	for (int k = 0; k < nflows; k++)
		start_flow(f);
	struct epoll_event evs[256];
	long long last_scan = now_ms();
	for (;;) {
		long long now = now_ms();
		if (now >= end)
			break;
		int n = epoll_wait(f->ep, evs, 256, 50);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			char b;
			finish_flow(f, fd, read(fd, &b, 1) == 1);
			if (now_ms() < end)
				start_flow(f);
		}
		now = now_ms();
		if (now - last_scan >= 50) {
			last_scan = now;
			for (int fd = 0; fd < MAX_FDS; fd++) {
				if (f->started[fd] && now - f->started[fd] > patience_ms) {
					finish_flow(f, fd, 0);
					if (now < end)
						start_flow(f);
				}
			}
		}
	}
	long counts[2] = { f->done, f->failed };
	if (write(out, counts, sizeof(counts)) != sizeof(counts))
		_exit(1);
	_exit(0);
}

static int client(const char *host, int port, int ms, int procs, int nflows, int patience_ms)
{
	static struct flows f;
	f.addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, host, &f.addr.sin_addr) != 1) {
		fprintf(stderr, "bad host %s\n", host);
		return 2;
	}
	int fds[2];
	if (pipe(fds))
		die("pipe");
	long long t0 = now_ms();
	for (int k = 0; k < procs; k++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0)
			client_process(&f, nflows, t0 + ms, patience_ms, fds[1]);
	}
	close(fds[1]);
	long done = 0, failed = 0, counts[2];
	while (read(fds[0], counts, sizeof(counts)) == sizeof(counts)) {
		done += counts[0];
		failed += counts[1];
	}
	while (wait(NULL) > 0)
		;
	printf("{\"done\":%ld,\"failed\":%ld,\"elapsed\":%lld}\n", done, failed, now_ms() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "server"))
		serve(atoi(argv[2]), atoi(argv[3]));
	if (argc == 8 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
	fprintf(stderr, "usage: tcp_crr server PORT WORKERS | client HOST PORT MS PROCESSES FLOWS PATIENCE_MS\n");
	return 2;
}
