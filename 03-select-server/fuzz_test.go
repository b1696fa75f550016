package main

import (
	"testing"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/stagetest"
)

// FuzzLineService runs the server's doRead and doWrite on one end of a
// socketpair, as run's loop does for a ready socket, and a client on the
// other end playing a script the fuzzer chooses (stagetest.PlayLineScript):
// writes of any bytes in any sizes, turns of the loop, reads, a
// half-close, a close with answers unread. After every step what the
// client has read is a prefix of the ROT13 of what it has written; after a
// half-close, it gets all of it and then the end of the stream; and
// however the client leaves, the server closes its end.
//
//	go test -run '^$' -fuzz FuzzLineService ./03-select-server
func FuzzLineService(f *testing.F) {
	f.Fuzz(func(t *testing.T, script []byte) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		server, client := fds[0], fds[1]
		for _, fd := range fds {
			if err := makeNonblocking(fd); err != nil {
				t.Fatal(err)
			}
		}
		st := allocFdState()
		stagetest.PlayLineScript(t, script, client, server, func() {
			if st == nil {
				return
			}
			// A turn of run's loop for this socket, with both sets asked
			// for whatever select would say: doRead and doWrite take
			// EAGAIN for "not ready".
			var err error
			if !st.ended && (st.buffer == nil || st.bufferUsed-st.nWritten < len(st.buffer)) {
				err = doRead(server, st)
			}
			if err == nil && st.writeUpto > st.nWritten {
				err = doWrite(server, st)
			}
			if err != nil || st.ended && st.nWritten == st.bufferUsed {
				freeFdState(st)
				unix.Close(server)
				st = nil
			}
		})
	})
}
