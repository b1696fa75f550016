package stagetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SignalThreads sends sig to every thread of every process in the
// server's group that does not block it, one tgkill(2) each (a signal sent
// to a process lands on any one of those, so a program must be ready for
// it on all), and waits until sig is pending nowhere in the group: every
// thread that was sent it has run its handler, or the kernel dropped it on
// arrival (a process that neither catches nor blocks a signal whose
// default action is to ignore it, as SIGURG's and SIGWINCH's are).
func (s *Server) SignalThreads(ctx context.Context, sig syscall.Signal) (SignalReport, error) {
	r := SignalReport{Interrupted: map[string]int{}}
	ms, err := members(s.Pid)
	if err != nil {
		return r, err
	}
	for _, m := range ms {
		if m.state == 'Z' {
			continue
		}
		catches, err := hasSignal(fmt.Sprintf("/proc/%d/status", m.pid), "SigCgt:", sig)
		if err != nil {
			continue // gone since members
		}
		r.Processes++
		if catches {
			r.Catching++
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", m.pid))
		if err != nil {
			continue
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			// A thread that blocks the signal would hold it pending until
			// it unblocks it; the kernel sends a signal meant for the
			// process to a thread that does not block it, and so does
			// this.
			if masked, err := hasSignal(fmt.Sprintf("/proc/%d/task/%d/status", m.pid, tid), "SigBlk:", sig); err != nil || masked {
				continue
			}
			call := ioWait(m.pid, tid)
			if err := unix.Tgkill(m.pid, tid, unix.Signal(sig)); err != nil {
				continue // the thread exited meanwhile
			}
			r.Threads++
			if catches && call != "" {
				r.Interrupted[call]++
			}
		}
	}
	// Delivered: no thread holds it pending, nor any process.
	for {
		pending := ""
		for _, m := range ms {
			if p, _ := hasSignal(fmt.Sprintf("/proc/%d/status", m.pid), "ShdPnd:", sig); p {
				pending = strconv.Itoa(m.pid)
			}
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", m.pid))
			for _, t := range tasks {
				status := fmt.Sprintf("/proc/%d/task/%s/status", m.pid, t.Name())
				p, _ := hasSignal(status, "SigPnd:", sig)
				masked, _ := hasSignal(status, "SigBlk:", sig)
				if p && !masked { // one that masked it since holds it, rightly
					pending = fmt.Sprintf("%d (thread %s)", m.pid, t.Name())
				}
			}
		}
		if pending == "" {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("%v still pending in process %s: %w", sig, pending, ctx.Err())
		case <-time.After(time.Millisecond): // polls a condition; orders nothing
		}
	}
}

// ioWaits names the system calls in which a server waits for IO, by
// number; signals_linux_amd64.go adds the older calls amd64 still has.
var ioWaits = map[int]string{
	unix.SYS_PSELECT6:       "pselect6",
	unix.SYS_PPOLL:          "ppoll",
	unix.SYS_EPOLL_PWAIT:    "epoll_pwait",
	unix.SYS_ACCEPT4:        "accept4",
	unix.SYS_READ:           "read",
	unix.SYS_RECVFROM:       "recvfrom",
	unix.SYS_IO_URING_ENTER: "io_uring_enter", // 07's wait for completions
}

// ioWait returns the name of the call in ioWaits in which the thread tid
// of pid is blocked, or "": /proc/PID/task/TID/syscall starts with the
// number of the call a thread is blocked in, and with "running" while it
// runs.
func ioWait(pid, tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil {
		return ""
	}
	return ioWaits[nr]
}

// hasSignal reports whether sig is in the signal mask of the line name
// ("SigCgt:", "SigPnd:") of a /proc status file: a hexadecimal mask, bit
// sig-1 for sig.
func hasSignal(path, name string, sig syscall.Signal) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
			if err != nil {
				return false, fmt.Errorf("%s: %q", path, line)
			}
			return mask&(1<<(uint(sig)-1)) != 0, nil
		}
	}
	return false, fmt.Errorf("%s has no %s line", path, name)
}
