/*
 * rot13.c: the book's last example, "A simpler ROT13 server with Libevent"
 * (A tiny introduction to asynchronous IO), on the real libevent, made to
 * follow the ladder's CONTRACT.md, so that the benchmarks can set our Go
 * libraries beside libevent itself. It is the same program as
 * 05-bufferevent-server, callback for callback.
 *
 *   cc -O2 -o rot13 rot13.c $(pkg-config --cflags --libs libevent)
 *   ./rot13 -listen 127.0.0.1:40713 -trace
 *
 * Like the book's examples, this code is under the 3-clause BSD license.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_LINE 16384
#define MAX_OUTPUT (1 << 20) /* CONTRACT.md: stop reading past 1 MiB of pending output */

static int tracing;

static void
trace(const char *fmt, ...)
{
	va_list ap;
	if (!tracing)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char
rot13_char(char c)
{
	if ((c >= 'a' && c <= 'm') || (c >= 'A' && c <= 'M'))
		return c + 13;
	else if ((c >= 'n' && c <= 'z') || (c >= 'N' && c <= 'Z'))
		return c - 13;
	return c;
}

/* rot13_all moves everything in input to output, ROT13'd. */
static void
rot13_all(struct evbuffer *input, struct evbuffer *output)
{
	char buf[4096];
	int n, i;
	while ((n = evbuffer_remove(input, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; ++i)
			buf[i] = rot13_char(buf[i]);
		evbuffer_add(output, buf, n);
	}
}

static void
readcb(struct bufferevent *bev, void *ctx)
{
	(void)ctx;
	struct evbuffer *input = bufferevent_get_input(bev);
	struct evbuffer *output = bufferevent_get_output(bev);
	char *line;
	size_t n, i;

	trace("read %zu into input of fd %d", evbuffer_get_length(input), (int)bufferevent_getfd(bev));
	while ((line = evbuffer_readln(input, &n, EVBUFFER_EOL_LF))) {
		for (i = 0; i < n; ++i)
			line[i] = rot13_char(line[i]);
		evbuffer_add(output, line, n);
		evbuffer_add(output, "\n", 1);
		free(line);
	}
	/* Unlike the book: a long line's bytes go out as they came, no "\n". */
	if (evbuffer_get_length(input) >= MAX_LINE)
		rot13_all(input, output);
	trace("write %zu from output of fd %d", evbuffer_get_length(output), (int)bufferevent_getfd(bev));
	/* Back-pressure: no reading while the output holds more than 1 MiB. */
	if (evbuffer_get_length(output) > MAX_OUTPUT)
		bufferevent_disable(bev, EV_READ);
}

/* writecb runs when the output has drained to its low watermark. */
static void
writecb(struct bufferevent *bev, void *ctx)
{
	if (ctx) { /* closing once flushed */
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
			trace("close fd %d", (int)bufferevent_getfd(bev));
			bufferevent_free(bev);
		}
		return;
	}
	bufferevent_enable(bev, EV_READ);
}

static void
eventcb(struct bufferevent *bev, short what, void *ctx)
{
	(void)ctx;
	if (what & BEV_EVENT_EOF) {
		/* Unlike the book: answer the last line, and close once flushed. */
		rot13_all(bufferevent_get_input(bev), bufferevent_get_output(bev));
		bufferevent_disable(bev, EV_READ);
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		bufferevent_setcb(bev, NULL, writecb, eventcb, (void *)1);
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
			trace("close fd %d", (int)bufferevent_getfd(bev));
			bufferevent_free(bev);
		}
		return;
	}
	/* An error (a reset) or a timeout: the client is gone. */
	trace("close fd %d", (int)bufferevent_getfd(bev));
	bufferevent_free(bev);
}

static struct event *resume_listener;
static time_t last_warning;

static void
accept_error(struct evconnlistener *l, void *ctx)
{
	(void)ctx;
	int err = EVUTIL_SOCKET_ERROR();
	time_t now = time(NULL);
	if (now != last_warning) { /* a line a second at most */
		fprintf(stderr, "rot13: accept: %s; pausing\n", evutil_socket_error_to_string(err));
		last_warning = now;
	}
	/* Out of descriptors, accept fails again at once: pause 100 ms. */
	struct timeval tv = {0, 100000};
	evconnlistener_disable(l);
	event_add(resume_listener, &tv);
}

static void
resume(evutil_socket_t fd, short what, void *ctx)
{
	(void)fd;
	(void)what;
	evconnlistener_enable(ctx);
}

static void
do_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *ctx)
{
	(void)l;
	(void)sa;
	(void)len;
	struct event_base *base = ctx;
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	trace("accept fd=%d", (int)fd);
	bufferevent_setcb(bev, readcb, writecb, eventcb, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, MAX_LINE);
	bufferevent_setwatermark(bev, EV_WRITE, MAX_OUTPUT / 2, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
stop(evutil_socket_t sig, short what, void *ctx)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(ctx);
}

/*
 * parse_addr reads "host:port", "[v6host]:port" or ":port" (every IPv4
 * address), and says what is wrong with it, or NULL: libevent's
 * evutil_parse_sockaddr_port refuses port 0, which picks a free port.
 */
static const char *
parse_addr(const char *addr, struct sockaddr_storage *ss, int *len)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	char *end;
	long port;
	if (!colon)
		return "missing port in address";
	if ((size_t)(colon - addr) >= sizeof(host))
		return "address too long";
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
		return "invalid port";
	memcpy(host, addr, colon - addr);
	host[colon - addr] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		host[strlen(host) - 1] = '\0';
		if (evutil_inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return "not an IPv6 address";
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return NULL;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	if (host[0] == '\0')
		strcpy(host, "0.0.0.0");
	if (evutil_inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return "not an IP address";
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	*len = sizeof(*s4);
	return NULL;
}

static void
usage(FILE *f)
{
	fprintf(f, "Usage of rot13:\n"
	           "  -listen host:port\n"
	           "    \tlisten on host:port (port 0 picks a free one) (default \"127.0.0.1:40713\")\n"
	           "  -trace\n"
	           "    \tnarrate accepts, reads, writes and closes on stderr\n");
}

int
main(int argc, char **argv)
{
	const char *listen_addr = "127.0.0.1:40713";
	struct sockaddr_storage ss;
	int sslen = sizeof(ss), i;

	for (i = 1; i < argc; ++i) {
		const char *a = argv[i];
		if (a[0] == '-' && a[1] == '-')
			a++;
		if (!strcmp(a, "-h") || !strcmp(a, "-help")) {
			usage(stderr);
			return 0;
		} else if (!strcmp(a, "-trace")) {
			tracing = 1;
		} else if (!strcmp(a, "-listen") && i + 1 < argc) {
			listen_addr = argv[++i];
		} else if (!strncmp(a, "-listen=", 8)) {
			listen_addr = a + 8;
		} else {
			fprintf(stderr, "flag provided but not defined: %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}

	const char *bad = parse_addr(listen_addr, &ss, &sslen);
	if (bad) {
		fprintf(stderr, "rot13: listen %s: %s\n", listen_addr, bad);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* a send to a vanished client: EPIPE, not death */

	struct event_base *base = event_base_new();
	if (!base) {
		fprintf(stderr, "rot13: event_base_new failed\n");
		return 1;
	}
	struct evconnlistener *l = evconnlistener_new_bind(base, do_accept, base,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, -1,
	    (struct sockaddr *)&ss, sslen);
	if (!l) {
		fprintf(stderr, "rot13: listen %s: bind: %s\n", listen_addr, strerror(errno));
		return 1;
	}
	evconnlistener_set_error_cb(l, accept_error);
	resume_listener = evtimer_new(base, resume, l);

	struct event *sigint = evsignal_new(base, SIGINT, stop, base);
	struct event *sigterm = evsignal_new(base, SIGTERM, stop, base);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);

	/* The port actually bound, in net.JoinHostPort form. */
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	char host[64];
	int port;
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen);
	if (bound.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&bound;
		evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		fprintf(stderr, "rot13: listening on [%s]:%d\n", host, port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&bound;
		evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		fprintf(stderr, "rot13: listening on %s:%d\n", host, port);
	}

	event_base_dispatch(base);
	return 0;
}
