package main

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSelect measures what one select call costs, and shows the
// book's footnote: the kernel reads the sets up to the highest descriptor
// given, however few are in them.
//
//	go test -run '^$' -bench Select ./03-select-server
//
// "one-fd-numbered" watches a single readable descriptor whose number is
// maxfd: only its number grows. "all-fds-up-to" watches every descriptor
// from 3 to maxfd, one of them readable, as a server with that many
// clients does (and rebuilds its set each time, as 03 does).
func BenchmarkSelect(b *testing.B) {
	for _, maxfd := range []int{16, 64, 256, 512, 1023} {
		b.Run(fmt.Sprintf("one-fd-numbered/maxfd=%d", maxfd), func(b *testing.B) {
			fds := readablePipes(b, maxfd, false)
			var set unix.FdSet
			for b.Loop() {
				set.Zero()
				set.Set(maxfd)
				selectNow(b, maxfd+1, &set)
			}
			b.ReportMetric(float64(len(fds)), "watched")
		})
		b.Run(fmt.Sprintf("all-fds-up-to/maxfd=%d", maxfd), func(b *testing.B) {
			fds := readablePipes(b, maxfd, true)
			var set unix.FdSet
			for b.Loop() {
				set.Zero()
				for _, fd := range fds {
					set.Set(fd)
				}
				selectNow(b, maxfd+1, &set)
			}
			b.ReportMetric(float64(len(fds)), "watched")
		})
	}
}

// readablePipes puts a readable pipe at descriptor maxfd, and with idle,
// idle pipes at every free descriptor below it. It returns the read ends.
func readablePipes(b *testing.B, maxfd int, idle bool) []int {
	b.Helper()
	if _, err := unix.FcntlInt(uintptr(maxfd), unix.F_GETFD, 0); err != unix.EBADF {
		b.Fatalf("descriptor %d is in use", maxfd)
	}
	var opened, reads []int
	b.Cleanup(func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	})
	pipe := func() [2]int {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			b.Fatal(err)
		}
		opened = append(opened, p[0], p[1])
		return p
	}
	for idle {
		p := pipe()
		if p[1] >= maxfd {
			break
		}
		reads = append(reads, p[0])
	}
	p := pipe()
	if err := unix.Dup3(p[0], maxfd, unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	opened = append(opened, maxfd)
	if _, err := unix.Write(p[1], []byte{1}); err != nil {
		b.Fatal(err)
	}
	return append(reads, maxfd)
}

// selectNow polls the set once and checks that exactly one descriptor is
// ready.
func selectNow(b *testing.B, nfd int, set *unix.FdSet) {
	zero := unix.Timeval{}
	n, err := unix.Select(nfd, set, nil, nil, &zero)
	if err != nil && err != unix.EINTR {
		b.Fatal(err)
	}
	if err == nil && n != 1 {
		b.Fatalf("%d ready, want 1", n)
	}
}
