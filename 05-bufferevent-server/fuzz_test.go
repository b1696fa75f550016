package main

import (
	"testing"
	"time"

	"tinyasync/pkg/event"
	"tinyasync/pkg/stagetest"
)

// FuzzLineService runs the server's callbacks (doAccept, readcb, errorcb)
// on a bufferevent over a Unix-domain connection, and a client on the
// other end playing a script the fuzzer chooses: writes of any bytes in any
// sizes, turns of the event loop, reads, a half-close, a close with
// answers unread (the peer of a Unix socket then sees ECONNRESET). After
// every step what the client has read is a prefix of the ROT13 of what it
// has written; after a half-close, it gets all of it and then the end of
// the stream; and however the client leaves, the server closes its end.
//
//	go test -run '^$' -fuzz FuzzLineService ./05-bufferevent-server
func FuzzLineService(f *testing.F) {
	stagetest.FuzzAccepted(f, func(listener int, base *event.Base) time.Duration {
		return doAccept(listener, base, 0) // no -idle
	})
}
