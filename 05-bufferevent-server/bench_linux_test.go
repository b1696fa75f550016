package main

import (
	"io"
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
	"tinyasync/pkg/stagetest"
)

// BenchmarkLines measures lines answered per second and, where strace is
// installed, the server's system calls per line (in all its threads), on
// each backend, for one client and for 100 with a line each in flight:
//
//	go test -run '^$' -bench Lines ./05-bufferevent-server
func BenchmarkLines(b *testing.B) {
	stagetest.BenchReactor(b, "05-bufferevent-server")
}

// BenchmarkAllocsPerLine runs the server's callbacks in this process, on
// its own base and goroutine, and a client on another, so that the
// benchmark's B/op and allocs/op are the memory one line costs (the
// client's reads and writes allocate nothing).
//
//	go test -run '^$' -bench AllocsPerLine -benchmem ./05-bufferevent-server
func BenchmarkAllocsPerLine(b *testing.B) {
	base, err := event.NewBase()
	if err != nil {
		b.Fatal(err)
	}
	listener, err := evutil.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(listener)
	if err := evutil.MakeNonblocking(listener); err != nil {
		b.Fatal(err)
	}
	addr, err := evutil.LocalAddr(listener)
	if err != nil {
		b.Fatal(err)
	}
	accept := event.New(base, listener, event.Read|event.Persist, func(fd int, _ event.Events) { doAccept(fd, base, 0) })
	if err := accept.Add(0); err != nil {
		b.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- base.Dispatch() }()
	defer func() {
		base.LoopBreak()
		<-done
		accept.Free()
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	line := []byte(strings.Repeat("x", 63) + "\n")
	got := make([]byte, len(line))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(line); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}
