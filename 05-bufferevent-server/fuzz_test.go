package main

import (
	"bytes"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
	"tinyasync/pkg/evutil"
	"tinyasync/pkg/rot13"
)

// FuzzLineService runs the server's callbacks (doAccept, readcb, eventcb)
// on a bufferevent over one end of a socketpair, and a client on the other
// end playing a script the fuzzer chooses: writes of any bytes in any
// sizes, turns of the event loop, reads, a half-close, a close with
// answers unread (the peer of a Unix socket then sees ECONNRESET). After
// every step what the client has read is a prefix of the ROT13 of what it
// has written; after a half-close, it gets all of it and then the end of
// the stream; and however the client leaves, the server closes its end.
//
//	go test -run '^$' -fuzz FuzzLineService ./05-bufferevent-server
func FuzzLineService(f *testing.F) {
	f.Add([]byte("\x00hello\n\x02\x03"))
	f.Add([]byte("\x00line one\nline tw\x02\x03\x00o\n\x04"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x02\x03\x02\x03\x05"))
	f.Add([]byte("\x00no newline at all\x04\x03"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x05"))
	f.Fuzz(func(t *testing.T, script []byte) {
		cfg := event.NewConfig()
		cfg.IgnoreEnv()
		base, err := event.NewBaseWithConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer base.Free()
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		server, client := fds[0], fds[1]
		for _, fd := range fds { // as the listener hands the server its sockets
			if err := evutil.MakeNonblocking(fd); err != nil {
				t.Fatal(err)
			}
		}
		var warn evutil.Throttle
		doAccept(base, 0, &warn)(nil, server, netip.AddrPort{})

		var sent, got []byte
		eof, closed := false, false
		defer func() {
			if !closed {
				unix.Close(client)
			}
		}()
		turn := func() {
			if err := base.Loop(event.NonBlock); err != nil {
				t.Fatal(err)
			}
		}
		read := func() {
			buf := make([]byte, 64<<10)
			for !eof {
				n, err := unix.Read(client, buf)
				if err == unix.EAGAIN {
					return
				}
				if err != nil {
					t.Fatalf("the client's read: %v", err)
				}
				if n == 0 {
					eof = true
					return
				}
				got = append(got, buf[:n]...)
			}
		}
		check := func(step int) {
			want := make([]byte, len(sent))
			copy(want, sent)
			rot13.InPlace(want)
			if !bytes.HasPrefix(want, got) {
				t.Fatalf("step %d: %d bytes sent, %d read, and they are not the ROT13 of the first ones sent", step, len(sent), len(got))
			}
		}

		halfClosed := false
	steps:
		for step := 0; len(script) > 0; step++ {
			op := script[0]
			script = script[1:]
			switch op % 6 {
			case 0: // write the script's bytes up to the next op byte below 6
				end := bytes.IndexFunc(script, func(r rune) bool { return r < 6 })
				if end < 0 {
					end = len(script)
				}
				if !halfClosed {
					sent = append(sent, write(t, client, script[:end])...)
				}
				script = script[end:]
			case 1: // write a block: 1 KiB times the next byte
				if len(script) == 0 || halfClosed {
					break
				}
				block := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789 ABC\n"), int(script[0])*25)
				script = script[1:]
				sent = append(sent, write(t, client, block)...)
			case 2: // the server's turn
				turn()
			case 3: // the client reads what has come
				read()
			case 4: // the client is done sending
				if !halfClosed {
					unix.Shutdown(client, unix.SHUT_WR)
					halfClosed = true
				}
			case 5: // the client goes, whatever is unread
				unix.Close(client)
				closed = true
				break steps
			}
			check(step)
		}

		if !closed {
			// Half-close, if the script did not: everything sent comes
			// back, and then the end of the stream.
			if !halfClosed {
				unix.Shutdown(client, unix.SHUT_WR)
			}
			for round := 0; !eof; round++ {
				if round == 100000 {
					t.Fatalf("after a half-close, %d of %d bytes back and no end of stream", len(got), len(sent))
				}
				turn()
				read()
			}
			check(-1)
			if len(got) != len(sent) {
				t.Fatalf("after a half-close, %d of %d bytes back before the end of stream", len(got), len(sent))
			}
		}
		// The server closes its end, however the client left.
		for round := 0; ; round++ {
			if _, err := unix.FcntlInt(uintptr(server), unix.F_GETFD, 0); err == unix.EBADF {
				break
			}
			if round == 100000 {
				t.Fatalf("the server still holds its end (closed client: %v, half-closed: %v)", closed, halfClosed)
			}
			turn()
		}
	})
}

// write writes as much of p as the socket takes now, and returns it.
func write(t *testing.T, fd int, p []byte) []byte {
	done := 0
	for done < len(p) {
		n, err := unix.Write(fd, p[done:])
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatalf("the client's write: %v", err)
		}
		done += n
	}
	return p[:done]
}
