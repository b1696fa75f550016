// Command 01-blocking-client is the book's first example, "A simple
// blocking HTTP client" (A tiny introduction to asynchronous IO), in Go on
// raw system calls: look a host up, open a socket, connect, send one
// HTTP/1.0 request, and copy the answer to stdout until the server closes.
//
// Every call here blocks: the lookup until the name is resolved, connect
// until the handshake is done, send until the kernel has taken the bytes,
// recv until bytes or the end of the stream arrive. That is fine for one
// connection; the rest of the ladder is about serving many.
//
// The book's program is one main; ours, step for step:
//
//	gethostbyname        net.DefaultResolver.LookupNetIP, in main
//	socket, connect      connect (each address in turn)
//	the send loop        the send loop, in main
//	the recv loop        the recv loop, in main
//	(the Host header)    hostHeader
//
//	go run ./01-blocking-client -host example.com -trace
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/evutil"
)

// trace narrates each system call on stderr when -trace is given.
var trace = log.New(io.Discard, "", 0)

func main() {
	flag.CommandLine.Init("01-blocking-client", flag.ExitOnError)
	host := flag.String("host", "www.google.com", "the `name` or IP address (IPv4 or IPv6) to ask")
	port := flag.Int("port", 80, "the TCP `port` to connect to")
	path := flag.String("path", "/", "the `path` to request")
	traceOn := flag.Bool("trace", false, "narrate each system call on stderr")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("01-blocking-client: ")
	if *traceOn {
		trace.SetOutput(os.Stderr)
	}
	if *port < 1 || *port > 65535 {
		log.Printf("invalid -port %d: not a TCP port (1 to 65535)", *port)
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		log.Printf("unexpected argument %q: every setting is a flag", flag.Arg(0))
		os.Exit(2)
	}
	name := strings.TrimSuffix(strings.TrimPrefix(*host, "["), "]")

	query := "GET " + *path + " HTTP/1.0\r\n" +
		"Host: " + hostHeader(name, *port) + "\r\n" +
		"\r\n"

	// Look up the host's addresses. Unlike the book, which calls
	// gethostbyname and gives up on anything but IPv4, this asks for IPv4
	// and IPv6 alike (getaddrinfo's job in C).
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", name)
	if err != nil {
		log.Fatal(err) // "lookup bad..name: no such host"
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	}
	trace.Printf("lookup %s: %v", name, addrs)

	fd, err := connect(addrs, uint16(*port))
	if err != nil {
		log.Fatal(err)
	}

	// Write the query. The book asks "XXX Can send succeed partially?"
	// Yes: a send that waits for room returns early, with the count so
	// far, when a signal the program catches arrives after it took some
	// bytes (send(2), signal(7)). So send what is left until nothing is.
	// (A send with no flags is a write.)
	remaining := []byte(query)
	for len(remaining) > 0 {
		n, err := unix.Write(fd, remaining)
		if err == unix.EINTR {
			continue // interrupted before it sent anything: send again
		}
		if err != nil {
			log.Fatal(os.NewSyscallError("send", err))
		}
		trace.Printf("send %d bytes to fd %d", n, fd)
		remaining = remaining[n:]
	}

	// Get an answer back, to the end of the stream.
	buf := make([]byte, 1024)
	for {
		n, err := evutil.IgnoringEINTRIO(unix.Read, fd, buf)
		if err != nil {
			// A reset mid-answer: what came before it is already on
			// stdout; say what happened and fail.
			log.Fatal(os.NewSyscallError("recv", err))
		}
		trace.Printf("recv %d bytes from fd %d", n, fd)
		if n == 0 {
			break // The server closed its side: the answer is complete.
		}
		if _, err := os.Stdout.Write(buf[:n]); err != nil {
			log.Fatal(err)
		}
	}
	unix.Close(fd) // its error tells nothing to act on: the descriptor is gone either way (close(2))
}

// hostHeader names the host as the user gave it, in brackets if it is an
// IPv6 literal, with the port only when it is not HTTP's own.
func hostHeader(name string, port int) string {
	if port == 80 {
		return strings.TrimSuffix(net.JoinHostPort(name, "80"), ":80")
	}
	return net.JoinHostPort(name, strconv.Itoa(port))
}

// connect opens a socket to each address in turn until one connects.
//
// Unlike the book, which tries only the first address: a name often has an
// IPv6 and an IPv4 address, and a server may listen on only one of them
// (localhost is often both ::1 and 127.0.0.1).
func connect(addrs []netip.Addr, port uint16) (int, error) {
	var failures []string
	for _, addr := range addrs {
		sa, domain := evutil.SockaddrOf(netip.AddrPortFrom(addr, port))
		fd, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
		if err != nil {
			return -1, os.NewSyscallError("socket", err)
		}
		// NOTE: connect is not retried on EINTR: an interrupted connect goes
		// on in the background, and calling it again fails with EALREADY.
		// Go's signal handlers use SA_RESTART, so Linux resumes the wait
		// itself.
		if err = unix.Connect(fd, sa); err == nil {
			trace.Printf("socket fd %d, connect %s: connected", fd, evutil.SockaddrString(sa))
			return fd, nil
		}
		trace.Printf("socket fd %d, connect %s: %v", fd, evutil.SockaddrString(sa), err)
		unix.Close(fd)
		failures = append(failures, fmt.Sprintf("%s: %v", evutil.SockaddrString(sa), err))
	}
	return -1, fmt.Errorf("connect: %s", strings.Join(failures, "; "))
}
