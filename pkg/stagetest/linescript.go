package stagetest

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tinyasync/pkg/event"
)

// PlayLineScript is a client of the ROT13 line service that plays a
// script a fuzzer chose, for the stages' fuzz targets: client is its end
// of a connection (nonblocking), server the server's end, which the server
// holds, and turn lets the server run once, without waiting, as one turn
// of its loop. The script's bytes are steps: writes of any bytes in any
// sizes, turns, reads, a half-close, a close with answers unread (the peer
// of a Unix socket then sees ECONNRESET).
//
// After every step, what the client has read must be a prefix of the ROT13
// of what it has written; after a half-close, it gets all of it and then
// the end of the stream; and however the client leaves, the server closes
// its end. It closes client.
func PlayLineScript(t *testing.T, script []byte, client, server int, turn func()) {
	t.Helper()
	var sent, got []byte
	eof, closed := false, false
	defer func() {
		if !closed {
			unix.Close(client)
		}
	}()
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
		want := rot13Of(sent)
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

// UnixListener opens a nonblocking Unix-domain socket listening in a
// directory of tb's, for a fuzz target to hand a stage's accept function:
// connections that need no port, and reset like TCP's.
func UnixListener(tb testing.TB) (fd int, addr *unix.SockaddrUnix) {
	tb.Helper()
	addr = &unix.SockaddrUnix{Name: tb.TempDir() + "/rot13"}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, addr); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		tb.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		tb.Fatal(err)
	}
	return fd, addr
}

// DialUnix connects a nonblocking client to addr, and returns it, with
// the descriptor the server's next accept in this process will get: the
// lowest one free.
func DialUnix(t *testing.T, addr *unix.SockaddrUnix) (client, next int) {
	t.Helper()
	client, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(client, addr); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(client, true); err != nil {
		t.Fatal(err)
	}
	next, err = unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(next)
	return client, next
}

// FuzzAccepted is the whole fuzz target of a stage that serves on an event
// base (04, 05): for each script, a fresh base, a client connected to a
// Unix-domain listener, the stage's accept function called once to take
// it, and PlayLineScript with a turn of the base's loop for each of the
// server's turns.
func FuzzAccepted(f *testing.F, accept func(listener int, base *event.Base) (pause time.Duration)) {
	f.Add([]byte("\x00hello\n\x02\x03"))
	f.Add([]byte("\x00line one\nline tw\x02\x03\x00o\n\x04"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x02\x03\x02\x03\x05"))
	f.Add([]byte("\x00no newline at all\x04\x03"))
	f.Add([]byte("\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x01\xff\x05"))
	listener, addr := UnixListener(f) // one for every run, as a server has
	f.Fuzz(func(t *testing.T, script []byte) {
		cfg := event.NewConfig()
		cfg.IgnoreEnv()
		base, err := event.NewBaseWithConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer base.Free()
		client, server := DialUnix(t, addr)
		if pause := accept(listener, base); pause > 0 {
			t.Fatalf("accept paused for %v", pause)
		}
		if _, err := unix.FcntlInt(uintptr(server), unix.F_GETFD, 0); err != nil {
			t.Fatalf("the server did not accept the client as fd %d: %v", server, err)
		}
		PlayLineScript(t, script, client, server, func() {
			if err := base.Loop(event.NonBlock); err != nil {
				t.Fatal(err)
			}
		})
	})
}
