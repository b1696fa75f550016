package main

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/rot13"
	"tinyasync/pkg/stagetest"
	"tinyasync/pkg/uring"
)

// FuzzLineService runs the server's completions (onAccept, onRecv, onSend)
// on a Unix-domain connection, and a client on the other end playing a
// script the fuzzer chooses (stagetest.PlayLineScript): writes of any
// bytes in any sizes, turns of the loop, reads, a half-close, a close with
// answers unread. After every step what the client has read is a prefix of
// the ROT13 of what it has written; after a half-close, it gets all of it
// and then the end of the stream; and however the client leaves, the
// server closes its end, once the kernel has finished with it.
//
//	go test -run '^$' -fuzz FuzzLineService ./07-completion-server
func FuzzLineService(f *testing.F) {
	f.Add([]byte("\x00hello\n\x02\x03"))
	f.Add([]byte("\x00line one\nline tw\x02\x03\x00o\n\x04"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x02\x03\x02\x03\x05"))
	f.Add([]byte("\x00no newline at all\x04\x03"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x05"))
	// One ring, buffers and listener for every run, as the server has.
	var err error
	if ring, err = uring.New(entries); err != nil {
		f.Fatal(err)
	}
	if bufs, err = ring.RegisterBufRing(0, bufCount, rot13.MaxLine); err != nil {
		f.Fatal(err)
	}
	listener, addr := stagetest.UnixListener(f)
	if err := unix.SetNonblock(listener, false); err != nil { // as run's
		f.Fatal(err)
	}
	accept(listener)
	cqes := make([]uring.CQE, 2*entries)
	f.Fuzz(func(t *testing.T, script []byte) {
		// A turn of run's loop. It waits a millisecond at most: the kernel
		// finishes an operation on the thread that submitted it, which may
		// be another than this goroutine's, and a turn that did not enter
		// the kernel would not wait for it at all.
		turn := func() {
			if _, err := ring.SubmitAndWaitTimeout(1, time.Millisecond); err != nil && err != unix.ETIME && err != unix.EINTR {
				t.Fatal(err)
			}
			for _, c := range cqes[:ring.ReapCQEs(cqes)] {
				if complete(c) {
					t.Fatal("a completion said to stop")
				}
			}
		}
		// DialUnix's guess at the server's descriptor comes too late here:
		// the kernel may accept as the client connects. conns, empty
		// between runs, tells.
		client, _ := stagetest.DialUnix(t, addr)
		server := -1
		for round := 0; server < 0; round++ {
			if round == 100000 {
				t.Fatal("the server did not accept the client")
			}
			turn()
			for fd := range conns {
				server = fd
			}
		}
		stagetest.PlayLineScript(t, script, client, server, turn)
		if len(conns) != 0 {
			t.Fatalf("%d connections still held after the client left", len(conns))
		}
	})
}
