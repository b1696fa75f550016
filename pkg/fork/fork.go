// Package fork gives 02-forking-server the book's fork(): a process of its
// own for each connection. Go cannot fork(2) a running program and go on
// in both copies (a Go process is many threads, and a forked copy would
// hold only the one that called fork), so Child starts the program itself
// again, with syscall.ForkExec, and hands it the accepted socket as its
// descriptor 3, the way inetd does. The new process sees from its
// arguments that it is a child (InChild), and serves descriptor 3.
//
// It also does the parent's share of the work that the book leaves
// undone, and that Go makes explicit: it reaps each child that exits (a
// child that exits stays a zombie until its parent waits for it), and on
// SIGINT or SIGTERM it stops every child and ends the program (Supervise).
package fork

import (
	"errors"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FD is the descriptor on which a child finds its connection: the first
// after stdin, stdout and stderr, which it shares with its parent, so that
// its log and trace reach the same terminal.
const FD = 3

// childArg is a child's first argument after the program's name.
const childArg = "-fork-child"

// ErrStopping is what Child says once the server is stopping.
var ErrStopping = errors.New("the server is stopping")

// children are the running children, so that the parent can reap each one
// and stop them all.
var children = struct {
	sync.Mutex
	pids     map[int]bool
	stopping bool
	args     []string // a child's arguments
	trace    *log.Logger
}{pids: map[int]bool{}, trace: log.New(io.Discard, "", 0)}

// InChild reports whether this process is a child that Child started, and
// if so takes its argument away, so that the program parses its own flags
// as usual.
func InChild() bool {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Args = append(os.Args[:1], os.Args[2:]...)
		nameChild()
		return true
	}
	return false
}

// Child starts a child to serve the connection on fd: the book's
// fork() == 0 branch. The child is not a copy of this process but the
// same program started afresh with the same flags, which finds fd as its
// descriptor FD.
//
// It inherits stdin, stdout, stderr and this socket, and nothing else:
// every descriptor the program opens is close-on-exec, and so, since
// Supervise, is every one it inherited (the book's children keep the
// listening socket, and with it the port, open).
func Child(fd int) (pid int, err error) {
	children.Lock()
	defer children.Unlock()
	if children.stopping {
		return 0, ErrStopping
	}
	self, err := selfExe()
	if err != nil {
		return 0, err
	}
	pid, err = syscall.ForkExec(self, children.args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2, uintptr(fd)},
		Sys:   childSys(),
	})
	if err == nil {
		children.pids[pid] = true
	}
	return pid, err
}

// Supervise prepares the parent to start children, and runs beside its
// accept loop until the program ends. It makes every descriptor the
// program inherited close-on-exec (from a shell, a CI runner: they would
// otherwise pass on to every child); it reaps each child that exits,
// whenever SIGCHLD says one did; and on SIGINT or SIGTERM it stops
// starting children, sends each one SIGTERM (SIGKILL a second later, for
// one that will not go), and ends the program with status 0 once they are
// all gone. trace narrates it.
func Supervise(trace *log.Logger) error {
	if err := closeOnExecInherited(); err != nil {
		return err
	}
	children.args = append([]string{os.Args[0], childArg}, os.Args[1:]...)
	children.trace = trace
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGINT, unix.SIGTERM)
	go supervise(sigchld, stop)
	return nil
}

func supervise(sigchld, stop <-chan os.Signal) {
	var giveUp <-chan time.Time
	for {
		select {
		case <-sigchld:
			reap()
		case sig := <-stop:
			children.Lock()
			if !children.stopping {
				children.stopping = true
				children.trace.Printf("%v: stopping %d children", sig, len(children.pids))
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

// signalAll sends sig to every child; the caller holds the lock. A child
// that has just exited is still a zombie until reap forgets it, so its pid
// is not another process's yet: Kill cannot fail in a way that matters.
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
			children.trace.Printf("reap child %d: killed by %v", pid, ws.Signal())
		} else {
			children.trace.Printf("reap child %d: exit status %d", pid, ws.ExitStatus())
		}
	}
}

// closeOnExecInherited marks close-on-exec every descriptor above stderr
// that this process has open, as it should be for everything it inherited
// (its own are so from the start). It lists the descriptors in /dev/fd,
// which on FreeBSD shows only 0 to 2 unless fdescfs is mounted.
func closeOnExecInherited() error {
	ents, err := os.ReadDir("/dev/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd) // fails only for ReadDir's own, now closed
		}
	}
	return nil
}
