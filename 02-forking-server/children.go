package main

// The parent's bookkeeping of its children: what fork() gives a C program
// for free, what Go has to spell out, and two of the book's bugs fixed.

import (
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// children are the running children, so that the parent can reap each one
// and stop them all.
var children = struct {
	sync.Mutex
	pids     map[int]bool
	stopping bool
}{pids: map[int]bool{}}

// forkChild starts a child to serve the connection on fd. It inherits
// stdin, stdout, stderr and this socket, and nothing else, since every
// descriptor this program opens is close-on-exec. Unlike the book, whose
// children keep the listening socket, and with it the port, open.
func forkChild(self string, args []string, fd int) (int, error) {
	children.Lock()
	defer children.Unlock()
	if children.stopping {
		return 0, unix.ESHUTDOWN
	}
	pid, err := syscall.ForkExec(self, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2, uintptr(fd)},
	})
	if err == nil {
		children.pids[pid] = true
	}
	return pid, err
}

// reap waits for children that have exited and forgets them, until none
// is left (ECHILD) or, with unix.WNOHANG, none has exited yet.
func reap(options int) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, options, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		children.Lock()
		delete(children.pids, pid)
		children.Unlock()
		if ws.Signaled() {
			trace.Printf("reap child %d: killed by %v", pid, ws.Signal())
		} else {
			trace.Printf("reap child %d: exit status %d", pid, ws.ExitStatus())
		}
	}
}

// stopOnSignal stops the server on SIGINT or SIGTERM: no new child starts,
// every child is told to stop, and the parent exits once they all have.
// Unlike the book, whose children go on serving when the parent is killed.
func stopOnSignal(stop <-chan os.Signal) {
	sig := <-stop
	children.Lock()
	children.stopping = true
	trace.Printf("%v: stopping %d children", sig, len(children.pids))
	for pid := range children.pids {
		unix.Kill(pid, unix.SIGTERM)
	}
	children.Unlock()
	time.AfterFunc(time.Second, func() { // in case one will not die
		children.Lock()
		defer children.Unlock()
		for pid := range children.pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	})
	reap(0)
	os.Exit(0)
}
