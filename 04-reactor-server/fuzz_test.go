package main

import (
	"testing"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/stagetest"
)

// FuzzLineService runs the server's callbacks (doAccept, doRead, doWrite)
// on a Unix-domain connection, and a client on the other end playing a
// script the fuzzer chooses: writes of any bytes in any
// sizes, turns of the event loop, reads, a half-close, a close with
// answers unread (the peer of a Unix socket then sees ECONNRESET). After
// every step what the client has read is a prefix of the ROT13 of what it
// has written; after a half-close, it gets all of it and then the end of
// the stream; and however the client leaves, the server closes its end.
//
//	go test -run '^$' -fuzz FuzzLineService ./04-reactor-server
func FuzzLineService(f *testing.F) {
	f.Add([]byte("\x00hello\n\x02\x03"))
	f.Add([]byte("\x00line one\nline tw\x02\x03\x00o\n\x04"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x02\x03\x02\x03\x05"))
	f.Add([]byte("\x00no newline at all\x04\x03"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x05"))
	listener, addr := stagetest.UnixListener(f) // one for every run, as a server has
	f.Fuzz(func(t *testing.T, script []byte) {
		cfg := event.NewConfig()
		cfg.IgnoreEnv()
		base, err := event.NewBaseWithConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer base.Free()
		client, server := stagetest.DialUnix(t, addr)
		if pause := doAccept(listener, base); pause > 0 {
			t.Fatalf("accept paused for %v", pause)
		}
		if _, err := unix.FcntlInt(uintptr(server), unix.F_GETFD, 0); err != nil {
			t.Fatalf("the server did not accept the client as fd %d: %v", server, err)
		}

		stagetest.PlayLineScript(t, script, client, server, func() {
			if err := base.Loop(event.NonBlock); err != nil {
				t.Fatal(err)
			}
		})
	})
}
