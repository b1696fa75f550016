package tests

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"tinyasync/pkg/stagetest"
)

// clientProperties are the rules of CONTRACT.md for the client, 01.
var clientProperties = []property{
	{"usage", "-h prints usage on stderr and exits 0; an unknown flag or a port out of range exits 2", 20 * time.Second, checkClientUsage, nil},
	{"request", "sends exactly `GET PATH HTTP/1.0\\r\\nHost: H\\r\\n\\r\\n`, `:P` after H unless P is 80", 30 * time.Second, checkRequest, nil},
	{"ipv4-ipv6", "IPv4 and IPv6 both work: -host 127.0.0.1, -host ::1 (Host: [::1]:P), -host localhost", 30 * time.Second, checkClientFamilies, nil},
	{"response", "copies the raw response to stdout byte for byte until the server closes; exit 0 whatever the status", 30 * time.Second, checkResponse, nil},
	{"lookup-failure", "a name that does not resolve: one stderr line, nothing on stdout, exit 1", 20 * time.Second, checkLookupFailure, nil},
	{"refused", "a refused connection: one stderr line, nothing on stdout, exit 1", 20 * time.Second, checkRefused, nil},
	{"reset", "a reset mid-response: the bytes before it on stdout, then one stderr line, exit 1", 30 * time.Second, checkClientReset, nil},
	{"trace", "-trace narrates the connect, the send and each recv with byte counts", 20 * time.Second, checkClientTrace, nil},
}

// httpPeer is a one-connection-at-a-time HTTP server that records each
// request and answers it as told.
type httpPeer struct {
	ln   net.Listener
	port string
	reqs chan []byte
}

// serveHTTP listens on addr and answers every request with respond.
func serveHTTP(c *check, addr string, respond func(conn *net.TCPConn, req []byte)) *httpPeer {
	c.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(c, err, "listen %s", addr)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p := &httpPeer{ln: ln, port: port, reqs: make(chan []byte, 16)}
	c.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.track(conn)
			var req []byte
			buf := make([]byte, 4096)
			for !bytes.Contains(req, []byte("\r\n\r\n")) {
				n, err := conn.Read(buf)
				req = append(req, buf[:n]...)
				if err != nil {
					break
				}
			}
			p.reqs <- req
			respond(conn.(*net.TCPConn), req)
			conn.Close()
		}
	}()
	return p
}

// reply answers with body and closes.
func reply(body string) func(*net.TCPConn, []byte) {
	return func(conn *net.TCPConn, _ []byte) { conn.Write([]byte(body)) }
}

// request returns what the server got, or fails the check.
func (p *httpPeer) request(c *check) string {
	select {
	case req := <-p.reqs:
		return string(req)
	case <-time.After(5 * time.Second):
		c.Errorf("no request arrived")
		return ""
	}
}

// clean checks that a run that succeeded printed nothing on stderr.
func clean(c *check, what string, r stagetest.Result) {
	assert.Equal(c, 0, r.ExitCode, "%s: exit status; stderr:\n%s", what, r.Stderr)
	assert.Empty(c, string(r.Stderr), "%s: nothing on stderr without -trace", what)
}

// failed checks a run that must fail: exit 1, nothing on stdout unless
// stdout is given, exactly one line on stderr that mentions each of words.
func failed(c *check, what string, r stagetest.Result, stdout []byte, words ...string) {
	assert.Equal(c, 1, r.ExitCode, "%s: exit status; stderr:\n%s", what, r.Stderr)
	assert.True(c, bytes.Equal(stdout, r.Stdout), "%s: stdout holds %d bytes, want %d", what, len(r.Stdout), len(stdout))
	lines := r.StderrLines()
	if assert.Len(c, lines, 1, "%s: one line on stderr:\n%s", what, r.Stderr) {
		for _, w := range words {
			assert.Contains(c, lines[0], w, "%s", what)
		}
	}
	noPanic(c, r.Stderr)
}

func checkClientUsage(c *check) {
	r := c.built.Run(c.T, 10*time.Second, "-h")
	assert.Equal(c, 0, r.ExitCode, "-h exits 0")
	for _, flag := range []string{"-host", "-port", "-path", "-trace"} {
		assert.Contains(c, string(r.Stderr), flag, "usage names %s", flag)
	}
	for _, def := range []string{`"www.google.com"`, "80", `"/"`} {
		assert.Contains(c, string(r.Stderr), "(default "+def+")", "usage gives the default %s", def)
	}
	assert.Empty(c, r.Stdout)

	for _, args := range [][]string{{"-no-such-flag"}, {"-port", "0"}, {"-port", "65536"}, {"-port", "http"}} {
		r := c.built.Run(c.T, 10*time.Second, args...)
		assert.Equal(c, 2, r.ExitCode, "%v exits 2; stderr:\n%s", args, r.Stderr)
		assert.Contains(c, string(r.Stderr), strings.TrimPrefix(args[len(args)-1], "-"), "the error names the bad value")
		assert.Empty(c, r.Stdout)
		noPanic(c, r.Stderr)
	}
}

func checkRequest(c *check) {
	p := serveHTTP(c, "127.0.0.1:0", reply("HTTP/1.0 200 OK\r\n\r\nok"))
	r := c.built.Run(c.T, 10*time.Second, "-host", "127.0.0.1", "-port", p.port, "-path", "/a/b?c=d&e=%20")
	assert.Equal(c, "GET /a/b?c=d&e=%20 HTTP/1.0\r\nHost: 127.0.0.1:"+p.port+"\r\n\r\n", p.request(c))
	clean(c, "127.0.0.1", r)

	r = c.built.Run(c.T, 10*time.Second, "-host", "127.0.0.1", "-port", p.port)
	assert.Equal(c, "GET / HTTP/1.0\r\nHost: 127.0.0.1:"+p.port+"\r\n\r\n", p.request(c), "the default path is /")
	clean(c, "the default path", r)

	// The Host header on port 80, which a test can listen on only with
	// privileges, is checked by 01's own TestHostHeader.
}

func checkClientFamilies(c *check) {
	const answer = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
	v4 := serveHTTP(c, "127.0.0.1:0", reply(answer))
	v6 := serveHTTP(c, "[::1]:0", reply(answer))
	for _, tc := range []struct {
		host, hostHeader string
		peer             *httpPeer
	}{
		{"127.0.0.1", "127.0.0.1:" + v4.port, v4},
		{"::1", "[::1]:" + v6.port, v6},
		{"localhost", "localhost:" + v4.port, v4},
	} {
		r := c.built.Run(c.T, 10*time.Second, "-host", tc.host, "-port", tc.peer.port)
		assert.Equal(c, "GET / HTTP/1.0\r\nHost: "+tc.hostHeader+"\r\n\r\n", tc.peer.request(c), "-host %s", tc.host)
		assert.Equal(c, answer, string(r.Stdout), "-host %s", tc.host)
		clean(c, "-host "+tc.host, r)
	}
}

func checkResponse(c *check) {
	rng := c.rand()
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(rng.IntN(256))
	}
	body = append([]byte("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n\x00"), body...)
	p := serveHTTP(c, "127.0.0.1:0", reply(string(body)))
	r := c.built.Run(c.T, 20*time.Second, "-host", "127.0.0.1", "-port", p.port)
	p.request(c)
	assert.True(c, bytes.Equal(body, r.Stdout), "stdout: %d bytes, want the %d of the response", len(r.Stdout), len(body))
	clean(c, "a megabyte of binary", r)

	notFound := "HTTP/1.0 404 Not Found\r\n\r\nno such page"
	p = serveHTTP(c, "127.0.0.1:0", reply(notFound))
	r = c.built.Run(c.T, 10*time.Second, "-host", "127.0.0.1", "-port", p.port, "-path", "/nope")
	p.request(c)
	assert.Equal(c, notFound, string(r.Stdout))
	clean(c, "a 404", r)

	// A small response in three writes, each sent once the client has read
	// the one before: however large its buffer, a client that takes its
	// first recv for the whole response gets only the status line.
	pieces := []string{"HTTP/1.0 200 OK\r\n", "Content-Type: text/plain\r\n\r\n", "sent in three writes\n"}
	p = serveHTTP(c, "127.0.0.1:0", replyInPieces(c, pieces...))
	r = c.built.Run(c.T, 10*time.Second, "-host", "127.0.0.1", "-port", p.port)
	p.request(c)
	assert.Equal(c, strings.Join(pieces, ""), string(r.Stdout), "a response that arrives in three pieces")
	clean(c, "a response in three pieces", r)
}

// replyInPieces answers with each piece in a write of its own, and writes
// the next only once the client has read the one before, so that each
// piece reaches the client in a recv of its own.
func replyInPieces(c *check, pieces ...string) func(*net.TCPConn, []byte) {
	return func(conn *net.TCPConn, _ []byte) {
		for i, piece := range pieces {
			if _, err := conn.Write([]byte(piece)); err != nil || i == len(pieces)-1 {
				return // the client has gone, or everything is sent
			}
			waitSent(c, conn)
			// ConnQueues takes conn for a client's: its "server" is the
			// client under test here, and ServerUnread what it has not read.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				if q, err := stagetest.ConnQueues(conn); err != nil || q.ServerUnread == 0 {
					break // read, or the connection is gone
				}
				time.Sleep(time.Millisecond) // Polls a condition; orders nothing.
			}
		}
	}
}

func checkLookupFailure(c *check) {
	// A name that is not a valid DNS name fails in the resolver without
	// asking any DNS server: never the internet.
	r := c.built.Run(c.T, 10*time.Second, "-host", "no..such..host")
	failed(c, "-host no..such..host", r, nil, "no..such..host")
}

func checkRefused(c *check) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(c, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // now nothing listens there
	r := c.built.Run(c.T, 10*time.Second, "-host", "127.0.0.1", "-port", port)
	failed(c, "a closed port", r, nil, "refused")
}

func checkClientReset(c *check) {
	rng := c.rand()
	head := make([]byte, 100<<10)
	for i := range head {
		head[i] = byte(rng.IntN(256))
	}
	p := serveHTTP(c, "127.0.0.1:0", func(conn *net.TCPConn, _ []byte) {
		conn.Write(head)
		// Once the client's kernel has every byte, reset: the client must
		// write them all out before it reports the reset.
		waitSent(c, conn)
		conn.SetLinger(0)
	})
	r := c.built.Run(c.T, 10*time.Second, "-host", "127.0.0.1", "-port", p.port)
	p.request(c)
	failed(c, "a reset after 100 KiB", r, head, "reset")
}

func checkClientTrace(c *check) {
	p := serveHTTP(c, "127.0.0.1:0", reply("HTTP/1.0 200 OK\r\n\r\n12345"))
	r := c.built.Run(c.T, 10*time.Second, "-host", "127.0.0.1", "-port", p.port, "-trace")
	req := p.request(c)
	assert.Equal(c, 0, r.ExitCode)
	assert.Equal(c, "HTTP/1.0 200 OK\r\n\r\n12345", string(r.Stdout), "the trace goes to stderr, never stdout")
	lines := r.StderrLines()
	count := fmt.Sprint(len(req))
	for _, want := range []struct {
		what  string
		match func(string) bool
	}{
		{"the connect", func(l string) bool { return hasWord(l, "connect", "connected") }},
		{"a send of the request's " + count + " bytes", func(l string) bool { return hasWord(l, "send", "sent", "write") && hasWord(l, count) }},
		{"a recv of the answer's 24 bytes", func(l string) bool { return hasWord(l, "recv", "read", "received") && hasWord(l, "24") }},
	} {
		found := false
		for _, l := range lines {
			found = found || want.match(l)
		}
		assert.True(c, found, "-trace shows %s:\n%s", want.what, r.Stderr)
	}
}
