// A pod flooding packets that policy denies, as fast as one process can send,
// for the denied-packet flood benchmark (monitor.bench.ts, BVB_ONLY=polegress,
// polingress). Python's per-packet send tops out far below what the kernel
// takes, so the benchmark would measure the interpreter, not the node.
//
//   flood udp HOST SECONDS
//     small UDP datagrams (18 bytes of payload) with sendmmsg, 64 a call, from
//     one unconnected socket; the destination port moves with every datagram
//     (1024..65535), so every one is a flow no conntrack entry has seen and
//     costs the policy its LPM lookups.
//   flood syn HOST SECONDS
//     TCP SYNs through a raw socket (IP_HDRINCL), 64 a sendmmsg call, each from
//     a new source port and sequence number: a SYN flood, every packet a new
//     TCP flow. The source is the pod's own address (the route's), so the
//     anti-spoofing check passes and policy is what drops it.
//
// Stops after SECONDS, or sooner at SIGINT/SIGTERM (the benchmark stops it when
// its measurement ends; the bound keeps a lost sender from flooding on), then
// prints {"sent":N,"errors":N,"elapsed_ms":N}: what the sockets accepted (a full
// device queue refuses some: errors).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BATCH 64
#define PAYLOAD 18

static volatile sig_atomic_t stopped;

static void stop(int sig)
{
	(void)sig;
	stopped = 1;
}

static uint32_t csum_add(uint32_t sum, const void *p, size_t len)
{
	const uint16_t *w = p;
	for (; len > 1; len -= 2)
		sum += *w++;
	if (len)
		sum += *(const uint8_t *)w;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

// The address the kernel would send from to dst: a connected UDP socket's name.
static struct in_addr source_for(struct sockaddr_in dst)
{
	struct sockaddr_in me;
	socklen_t len = sizeof(me);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	dst.sin_port = htons(9);
	if (s < 0 || connect(s, (struct sockaddr *)&dst, sizeof(dst)) || getsockname(s, (struct sockaddr *)&me, &len))
		die("source address");
	close(s);
	return me.sin_addr;
}

struct syn {
	struct iphdr ip;
	struct tcphdr tcp;
};

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "udp") && strcmp(argv[1], "syn"))) {
		fprintf(stderr, "usage: flood udp|syn HOST SECONDS\n");
		return 2;
	}
	int syn = !strcmp(argv[1], "syn");
	struct sockaddr_in dst = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, argv[2], &dst.sin_addr) != 1) {
		fprintf(stderr, "flood: not an IPv4 address: %s\n", argv[2]);
		return 2;
	}
	long long ms = (long long)(atof(argv[3]) * 1000);
	if (ms <= 0) {
		fprintf(stderr, "flood: SECONDS must be positive\n");
		return 2;
	}

	struct sigaction sa = { .sa_handler = stop };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int fd = syn ? socket(AF_INET, SOCK_RAW, IPPROTO_RAW) : socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		die("socket");
	struct in_addr src = syn ? source_for(dst) : (struct in_addr){ 0 };

	static struct sockaddr_in to[BATCH];
	static struct iovec iov[BATCH];
	static struct mmsghdr msgs[BATCH];
	static struct syn pkts[BATCH];
	static char payload[PAYLOAD] = "bvcni denied flood";
	for (int i = 0; i < BATCH; i++) {
		to[i] = dst;
		if (syn) {
			pkts[i].ip = (struct iphdr){ .version = 4, .ihl = 5, .ttl = 64, .protocol = IPPROTO_TCP, .tot_len = htons(sizeof(struct syn)), .saddr = src.s_addr, .daddr = dst.sin_addr.s_addr };
			pkts[i].tcp = (struct tcphdr){ .dest = htons(80), .doff = 5, .syn = 1, .window = htons(64240) };
			iov[i] = (struct iovec){ .iov_base = &pkts[i], .iov_len = sizeof(struct syn) };
		} else {
			iov[i] = (struct iovec){ .iov_base = payload, .iov_len = PAYLOAD };
		}
		msgs[i].msg_hdr = (struct msghdr){ .msg_name = &to[i], .msg_namelen = sizeof(to[i]), .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	// The pseudo-header's sum is the same for every SYN: only the TCP header changes.
	uint32_t pseudo = 0;
	if (syn) {
		uint16_t tail[2] = { htons(IPPROTO_TCP), htons(sizeof(struct tcphdr)) };
		pseudo = csum_add(csum_add(0, &src.s_addr, 4), &dst.sin_addr.s_addr, 4);
		pseudo = csum_add(pseudo, tail, sizeof(tail));
	}

	unsigned long long sent = 0, errors = 0;
	uint32_t flow = (uint32_t)getpid() * 2654435761u;
	long long start = now_ms(), end = start + ms;
	while (!stopped && now_ms() < end) {
		for (int i = 0; i < BATCH; i++, flow++) {
			if (syn) {
				struct tcphdr *t = &pkts[i].tcp;
				t->source = htons(1024 + flow % 64512);
				t->seq = htonl(flow * 2654435761u);
				t->check = 0;
				t->check = csum_fold(csum_add(pseudo, t, sizeof(*t)));
			} else {
				to[i].sin_port = htons(1024 + flow % 64512);
			}
		}
		int n = sendmmsg(fd, msgs, BATCH, 0);
		if (n > 0)
			sent += n;
		// A refused message ends the call at it: count it and go on with the next batch.
		if (n < BATCH) {
			if (n < 0 && errno != EINTR && errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED && errno != EPERM)
				die("sendmmsg");
			errors++;
		}
	}
	printf("{\"sent\":%llu,\"errors\":%llu,\"elapsed_ms\":%lld}\n", sent, errors, now_ms() - start);
	return 0;
}
