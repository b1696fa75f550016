package main

// The parent's bookkeeping of its children: what fork() gives a C program
// for free, what Go has to spell out, and three of the book's bugs fixed.

import (
	"errors"
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

// errStopping is what forkChild says once the server is stopping.
var errStopping = errors.New("the server is stopping")

// forkChild starts a child to serve the connection on fd: the child's half
// of the book's if (fork() == 0). The child is not a copy of this process
// but the same program started afresh, which sees from its argv[0] that it
// is a child (in main) and runs child(3).
//
// It inherits stdin, stdout, stderr and this socket, and nothing else:
// every descriptor this program opens is close-on-exec, and so, since
// start-up, is every one it inherited. Unlike the book, whose children
// keep the listening socket, and with it the port, open.
func forkChild(self string, args []string, fd int) (int, error) {
	children.Lock()
	defer children.Unlock()
	if children.stopping {
		return 0, errStopping
	}
	pid, err := syscall.ForkExec(self, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2, uintptr(fd)},
		Sys:   childSys(),
	})
	if err == nil {
		children.pids[pid] = true
	}
	return pid, err
}

// stopping reports whether the server is stopping.
func stopping() bool {
	children.Lock()
	defer children.Unlock()
	return children.stopping
}

// supervise runs beside the accept loop, and does two things the book
// leaves undone. Unlike the book, which never waits for its children, it
// reaps each child that exits (a child that exits stays a zombie until its
// parent does), whenever SIGCHLD says one did. Unlike the book, whose
// children go on serving when the parent is stopped, on SIGINT or SIGTERM
// it stops accepting, tells every child to stop, and ends the program once
// they all have.
func supervise(listener int, sigchld, stop <-chan os.Signal) {
	var giveUp <-chan time.Time
	for {
		select {
		case <-sigchld:
			reap()
		case sig := <-stop:
			children.Lock()
			if !children.stopping {
				children.stopping = true
				// Stop accepting; on Linux this also wakes the accept
				// that waits, so that the kernel refuses new clients.
				unix.Shutdown(listener, unix.SHUT_RD)
				trace.Printf("%v: stopping %d children", sig, len(children.pids))
				signalAll(unix.SIGTERM)
				giveUp = time.After(time.Second)
			}
			children.Unlock()
		case <-giveUp: // for a child that will not die of SIGTERM
			children.Lock()
			signalAll(unix.SIGKILL)
			children.Unlock()
		}
		children.Lock()
		done := children.stopping && len(children.pids) == 0
		children.Unlock()
		if done {
			os.Exit(0)
		}
	}
}

// signalAll sends sig to every child; the caller holds the lock.
func signalAll(sig syscall.Signal) {
	for pid := range children.pids {
		unix.Kill(pid, sig)
	}
}

// reap collects every child that has exited, without waiting for the
// others, and forgets it. It holds the lock from wait4 until the pid is
// forgotten, so that nobody signals a pid that has been reaped, and may
// already be another process's.
func reap() {
	children.Lock()
	defer children.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return // none has exited yet (0), or none is left (ECHILD)
		}
		delete(children.pids, pid)
		if ws.Signaled() {
			trace.Printf("reap child %d: killed by %v", pid, ws.Signal())
		} else {
			trace.Printf("reap child %d: exit status %d", pid, ws.ExitStatus())
		}
	}
}
