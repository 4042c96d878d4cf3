// bvcni's front: the executable a container runtime runs as the CNI plugin.
//
// Every CNI call is a new process, and Node's start-up alone costs ~20 ms of
// CPU where the Go reference plugins spend ~2 ms: on two cores that, not the
// work, bounds how many pods a node starts per second. When bvcnid runs, the
// plugin only forwards its CNI_* variables and stdin over <dataDir>/bvcnid.sock
// (src/cni/delegate.ts) and prints the answer: this program does exactly that
// without starting Node. It sends the request delegate.ts would send (same
// JSON, same framing: the request, a half-close, the answer, a close) and
// writes the daemon's stdout and exit code as its own. VERSION, a constant,
// it answers itself (the bytes are generated from the TypeScript).
//
// Everything else is the Node plugin's (src/cni/main.ts, installed beside
// this as bvcni.d/bvcni-node), run by execve with the same argv and
// environment and the stdin already read on fd 0 (a memfd): no
// CNI_COMMAND, BVCNI_NO_DAEMON, and whatever this program does not
// understand (stdin or a CNI_* variable that is not UTF-8, the same CNI_*
// variable twice, a config nested deeper than this parser goes, a dataDir
// with "." or ".." segments or out of sun_path's reach). Those go
// unmarked, so the Node plugin decides for itself, exactly as it did before
// this front existed. Where the decision is already made it is passed on:
// no daemon, a refused connection or a decline set BVCNI_NO_DAEMON=1 (do the
// work locally); an answer lost after the request reached bvcnid sets
// BVCNI_FRONT_LOST=<why> for every command but DEL, which the Node plugin
// answers with code 11 (try again later) as delegate.ts does, so the error
// text lives in one place. A DEL whose answer is lost is done locally.
//
// Only libc, linked statically where libc.a is there (no dynamic loader at
// start-up). The constants shared with the TypeScript side come from
// front-defaults.h, which the build generates from it (tools/front-header.ts).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "front-defaults.h"
#include "json.h"

extern char **environ;

// Why the Node plugin is run: the environment it gets differs by that.
enum handoff {
	HANDOFF_UNDECIDED, // the Node plugin decides (unchanged environment)
	HANDOFF_LOCAL,     // do the work locally: BVCNI_NO_DAEMON=1
	HANDOFF_LOST,      // the daemon had the request, no answer: BVCNI_FRONT_LOST
};

// The answer bvcnid may send at most; far above any CNI result.
#define MAX_ANSWER_BYTES (16u << 20)
// JSON.parse's own nesting limit is higher; deeper configs go to the Node plugin.
#define MAX_DEPTH 256

static char **saved_argv;
static struct buf stdin_buf;
static int stdin_read; // stdin_buf holds the whole of fd 0

static const char *env_first(const char *name)
{
	size_t n = strlen(name);
	for (char **e = environ; *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			// A non-blocking pipe that is full: the runtime is reading it.
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, -1);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			return;
		}
	}
}

// Only when the Node plugin itself cannot be run: the spec's error on stdout,
// with the config's version when it names a supported one.
static void __attribute__((noreturn)) exec_failed(const char *path, int err)
{
	const char *version = BVCNI_CNI_LATEST;
	struct json_span v;
	if (stdin_read && json_top_string(stdin_buf.p, stdin_buf.len, "cniVersion", MAX_DEPTH, &v) == JSON_FOUND) {
		for (size_t i = 0; i < sizeof(bvcni_cni_versions) / sizeof(bvcni_cni_versions[0]); i++)
			if (strlen(bvcni_cni_versions[i]) == v.len && !memcmp(bvcni_cni_versions[i], v.p, v.len))
				version = bvcni_cni_versions[i];
	}
	struct buf out = { 0 };
	buf_puts(&out, "{\"cniVersion\":\"");
	buf_puts(&out, version);
	buf_puts(&out, "\",\"code\":100,\"msg\":\"internal error\",\"details\":");
	char why[PATH_MAX + 128];
	snprintf(why, sizeof(why), "cannot run the plugin %s: %s", path, strerror(err));
	json_put_string(&out, why, strlen(why));
	buf_puts(&out, "}\n");
	signal(SIGPIPE, SIG_IGN);
	if (out.p)
		write_all(1, out.p, out.len);
	_exit(1);
}

// What was read of stdin, as fd 0 again: a memfd, or a pipe fed by a
// grandchild when memfds are not available.
static int restore_stdin(void)
{
	int fd = memfd_create("bvcni-stdin", MFD_CLOEXEC);
	if (fd >= 0) {
		const char *p = stdin_buf.p;
		size_t left = stdin_buf.len;
		while (left) {
			ssize_t n = write(fd, p, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			p += n;
			left -= (size_t)n;
		}
		if (lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0)
			return -1;
		close(fd);
		return 0;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		// Reparented to init at once, so the Node plugin never has a child to reap.
		if (fork() == 0) {
			close(p[0]);
			write_all(p[1], stdin_buf.p, stdin_buf.len);
			_exit(0);
		}
		_exit(0);
	}
	close(p[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (dup2(p[0], 0) < 0)
		return -1;
	close(p[0]);
	return 0;
}

static int node_plugin_path(char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
	} else if (!saved_argv[0] || !strchr(saved_argv[0], '/') || !realpath(saved_argv[0], self)) {
		return -1;
	}
	char *slash = strrchr(self, '/');
	*slash = 0;
	int len = snprintf(out, size, "%s/%s", self, BVCNI_NODE_PLUGIN);
	return len > 0 && (size_t)len < size ? 0 : -1;
}

// Runs the Node plugin in this process: same argv, the environment marked as
// the handoff says, stdin as it was. Never returns.
static void __attribute__((noreturn)) handoff(enum handoff how, const char *why)
{
	char path[PATH_MAX];
	if (node_plugin_path(path, sizeof(path)) < 0)
		exec_failed("bvcni.d/bvcni-node beside this executable", ENOENT);
	if (stdin_read && restore_stdin() < 0)
		exec_failed(path, errno);

	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	if (!env)
		exec_failed(path, ENOMEM);
	size_t k = 0;
	// Whatever a caller set is not this front's word: only the mark below counts.
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], BVCNI_FRONT_LOST_ENV "=", sizeof(BVCNI_FRONT_LOST_ENV)))
			env[k++] = environ[i];
	struct buf mark = { 0 };
	if (how == HANDOFF_LOCAL) {
		buf_puts(&mark, BVCNI_NO_DAEMON_ENV "=1");
	} else if (how == HANDOFF_LOST) {
		buf_puts(&mark, BVCNI_FRONT_LOST_ENV "=");
		buf_puts(&mark, why);
	}
	if (mark.p) {
		buf_put(&mark, "", 1);
		env[k++] = mark.p;
	}
	env[k] = NULL;
	execve(path, saved_argv, env);
	exec_failed(path, errno);
}

// Whole stdin; a read error leaves fd 0 to the Node plugin as it is.
static int read_stdin(void)
{
	for (;;) {
		if (buf_reserve(&stdin_buf, 65536) < 0)
			return -1;
		ssize_t n = read(0, stdin_buf.p + stdin_buf.len, stdin_buf.cap - stdin_buf.len);
		if (n > 0) {
			stdin_buf.len += (size_t)n;
		} else if (n == 0) {
			return 0;
		} else if (errno == EAGAIN) {
			struct pollfd pfd = { .fd = 0, .events = POLLIN };
			poll(&pfd, 1, -1);
		} else if (errno != EINTR) {
			return -1;
		}
	}
}

// The namespace behind a path as Node's statSync reports it: {"dev":…,"ino":…}.
static void put_ns(struct buf *b, const char *field, const char *path)
{
	struct stat st;
	if (!path || !*path || stat(path, &st) < 0)
		return;
	char tmp[128];
	snprintf(tmp, sizeof(tmp), ",\"%s\":{\"dev\":%llu,\"ino\":%llu}", field, (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	buf_puts(b, tmp);
}

// delegate.ts's request: {"protocol","env":{CNI_*},"stdin","nodeNs","podNs"}.
// -1: a variable this program does not pass on as Node would.
static int build_request(struct buf *req)
{
	char pnum[32];
	snprintf(pnum, sizeof(pnum), "{\"protocol\":%d,\"env\":{", BVCNI_DELEGATE_PROTOCOL);
	buf_puts(req, pnum);
	int first = 1;
	const char *netns = NULL;
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "CNI_", 4))
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		size_t klen = (size_t)(eq - *e);
		// Twice the same name: which one Node reports is its business.
		for (char **f = environ; f != e; f++)
			if (!strncmp(*f, *e, klen + 1))
				return -1;
		const char *val = eq + 1;
		if (!utf8_valid(*e, klen) || !utf8_valid(val, strlen(val)))
			return -1;
		if (klen == 9 && !strncmp(*e, "CNI_NETNS", 9))
			netns = val;
		if (!first)
			buf_puts(req, ",");
		first = 0;
		json_put_string(req, *e, klen);
		buf_puts(req, ":");
		json_put_string(req, val, strlen(val));
	}
	buf_puts(req, "},\"stdin\":");
	json_put_string(req, stdin_buf.p ? stdin_buf.p : "", stdin_buf.len);
	put_ns(req, "nodeNs", "/proc/self/ns/net");
	put_ns(req, "podNs", netns);
	buf_puts(req, "}");
	return req->failed ? -1 : 0;
}

// path.join(dataDir, "bvcnid.sock") for a dataDir without "." or ".."
// segments (join would resolve them lexically, the kernel through symlinks):
// repeated and trailing slashes collapse. -1: such a segment, or too long.
static int socket_path(const char *dir, size_t len, struct sockaddr_un *sa)
{
	size_t o = 0;
	const size_t max = sizeof(sa->sun_path) - 1;
	for (size_t i = 0; i < len;) {
		while (i < len && dir[i] == '/')
			i++;
		size_t s = i;
		while (i < len && dir[i] != '/')
			i++;
		size_t seg = i - s;
		if (!seg)
			break;
		if ((seg == 1 && dir[s] == '.') || (seg == 2 && dir[s] == '.' && dir[s + 1] == '.'))
			return -1;
		if (memchr(dir + s, 0, seg) || o + 1 + seg > max)
			return -1;
		sa->sun_path[o++] = '/';
		memcpy(sa->sun_path + o, dir + s, seg);
		o += seg;
	}
	size_t sl = strlen(BVCNI_DAEMON_SOCKET);
	if (o + 1 + sl > max)
		return -1;
	sa->sun_path[o++] = '/';
	memcpy(sa->sun_path + o, BVCNI_DAEMON_SOCKET, sl);
	sa->sun_path[o + sl] = 0;
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct exchange {
	int fd;
	long long deadline;
	const char *path;
	char why[256]; // set when the answer is lost
};

// Worded as delegate.ts words it: "<what> <errno name> <socket>".
static int lost(struct exchange *x, const char *what, int err)
{
	if (err)
		snprintf(x->why, sizeof(x->why), "%s %s %s", what, strerrorname_np(err) ? strerrorname_np(err) : strerror(err), x->path);
	else
		snprintf(x->why, sizeof(x->why), "%s", what);
	return -1;
}

// Sends the request, half-closes, reads the answer to EOF, all before the
// deadline. 0: answer in ans; -1: lost (why says how).
static int exchange(struct exchange *x, const struct buf *req, struct buf *ans)
{
	size_t sent = 0;
	int shut = 0;
	for (;;) {
		if (sent == req->len && !shut) {
			if (shutdown(x->fd, SHUT_WR) < 0)
				return lost(x, "send", errno);
			shut = 1;
		}
		long long left = x->deadline - now_ms();
		if (left <= 0) {
			char what[64];
			snprintf(what, sizeof(what), "no answer within %d ms", BVCNI_ANSWER_TIMEOUT_MS);
			return lost(x, what, 0);
		}
		struct pollfd pfd = { .fd = x->fd, .events = POLLIN | (shut ? 0 : POLLOUT) };
		int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno != EINTR)
			return lost(x, "poll", errno);
		if (r <= 0)
			continue;
		if (!shut && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = send(x->fd, req->p + sent, req->len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				return lost(x, "send", errno);
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			if (buf_reserve(ans, 65536) < 0)
				return lost(x, "receive", ENOMEM);
			ssize_t n = recv(x->fd, ans->p + ans->len, ans->cap - ans->len, MSG_DONTWAIT);
			if (n > 0) {
				ans->len += (size_t)n;
				if (ans->len > MAX_ANSWER_BYTES)
					return lost(x, "answer larger than the front accepts", 0);
			} else if (n == 0) {
				// The daemon answers only after the whole request: an end before is a drop.
				if (!shut)
					return lost(x, "connection closed before a complete answer", 0);
				return 0;
			} else if (errno != EAGAIN && errno != EINTR) {
				return lost(x, "receive", errno);
			}
		}
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	saved_argv = argv;
	const char *cmd = env_first("CNI_COMMAND");
	const char *alone = env_first(BVCNI_NO_DAEMON_ENV);
	// VERSION's answer is a constant (versionInfo in src/cni/version.ts), and
	// some runtimes (podman) ask it before every ADD and DEL: no Node for it.
	if (cmd && !strcmp(cmd, "VERSION")) {
		signal(SIGPIPE, SIG_IGN);
		write_all(1, BVCNI_VERSION_INFO, sizeof(BVCNI_VERSION_INFO) - 1);
		_exit(0);
	}
	// Run by hand, or asked to work alone.
	if (!cmd || !*cmd || (alone && *alone))
		handoff(HANDOFF_UNDECIDED, NULL);
	if (read_stdin() < 0) {
		// What was read is lost to the Node plugin too; it reads fd 0 itself and meets the same error.
		stdin_read = 0;
		handoff(HANDOFF_UNDECIDED, NULL);
	}
	stdin_read = 1;
	if (!utf8_valid(stdin_buf.p ? stdin_buf.p : "", stdin_buf.len))
		handoff(HANDOFF_UNDECIDED, NULL);

	// configString(stdin, "dataDir"): absent or null is the default.
	struct json_span dir = { 0 };
	switch (json_top_string(stdin_buf.p ? stdin_buf.p : "", stdin_buf.len, "dataDir", MAX_DEPTH, &dir)) {
	case JSON_FOUND:
		break;
	case JSON_ABSENT:
	case JSON_NULL:
		dir = (struct json_span){ BVCNI_DEFAULT_DATA_DIR, sizeof(BVCNI_DEFAULT_DATA_DIR) - 1 };
		break;
	case JSON_NOT_STRING:
	case JSON_INVALID:
		// delegate.ts does not ask the daemon; the handler answers with the spec's error.
		handoff(HANDOFF_LOCAL, NULL);
	case JSON_UNSURE:
	default:
		handoff(HANDOFF_UNDECIDED, NULL);
	}
	if (!dir.len || dir.p[0] != '/')
		handoff(HANDOFF_LOCAL, NULL);

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (socket_path(dir.p, dir.len, &sa) < 0)
		handoff(HANDOFF_UNDECIDED, NULL);
	struct buf req = { 0 };
	if (build_request(&req) < 0)
		handoff(HANDOFF_UNDECIDED, NULL);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		handoff(HANDOFF_UNDECIDED, NULL);
	// A full accept queue makes connect wait (bounded like the answer) rather than fail.
	struct timeval tv = { .tv_sec = BVCNI_ANSWER_TIMEOUT_MS / 1000, .tv_usec = (BVCNI_ANSWER_TIMEOUT_MS % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int r;
	while ((r = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 && errno == EINTR)
		;
	if (r < 0) {
		// Nothing reached a daemon: no socket, refused, or none accepting in time.
		close(fd);
		handoff(HANDOFF_LOCAL, NULL);
	}

	// From here the daemon may be working on it: DEL (idempotent) falls back to
	// local work, anything else must not run twice.
	struct exchange x = { .fd = fd, .deadline = now_ms() + BVCNI_ANSWER_TIMEOUT_MS, .path = sa.sun_path };
	struct buf ans = { 0 };
	int is_del = !strcmp(cmd, "DEL");
	if (exchange(&x, &req, &ans) < 0)
		handoff(is_del ? HANDOFF_LOCAL : HANDOFF_LOST, x.why);
	close(fd);

	struct json_outcome out;
	switch (json_parse_answer(ans.p ? ans.p : "", ans.len, MAX_DEPTH, &out)) {
	case ANSWER_OUTCOME:
		break;
	case ANSWER_NO_OUTCOME:
		// Declined: the daemon's view differs from ours; the plugin does it.
		handoff(HANDOFF_LOCAL, NULL);
	case ANSWER_GARBAGE:
	default:
		handoff(is_del ? HANDOFF_LOCAL : HANDOFF_LOST, "connection closed before a complete answer");
	}
	signal(SIGPIPE, SIG_IGN);
	write_all(1, out.stdout_text.p ? out.stdout_text.p : "", out.stdout_text.len);
	_exit(out.exit_code);
}
