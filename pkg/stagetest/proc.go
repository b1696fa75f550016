package stagetest

import (
	"syscall"
	"time"
)

// Usage is what a server's processes hold and have used, summed over its
// process group: the server and every child it started.
type Usage struct {
	Procs   int           // processes in the group, zombies included
	Zombies int           // processes that exited and were not reaped
	Threads int           // threads, summed
	RSS     int64         // resident memory in bytes (VmRSS), summed
	PeakRSS int64         // each process's high-water mark (VmHWM), summed
	PSS     int64         // proportional set size: shared pages split among their users
	CPU     time.Duration // user and system time, including reaped children's
	FDs     int           // open descriptors, summed
}

// Queues is what waits in the kernel on one connection between a client
// and the server, in bytes.
type Queues struct {
	ServerUnsent int // the server wrote it; the client has not taken it (the server's Send-Q)
	ClientUnread int // it reached the client, which has not read it (the client's Recv-Q)
	ServerUnread int // the client sent it; the server has not read it (the server's Recv-Q)
}

// A SignalReport says where a signal sent to every thread of a server
// landed.
type SignalReport struct {
	Processes int // live processes in the server's group
	Catching  int // of them, those with a handler for the signal
	Threads   int // threads signalled: those that did not block the signal
	// Interrupted counts, by system call, the threads of catching
	// processes that were blocked waiting for IO when signalled (in
	// select, poll, epoll_wait, accept or read): the handler runs there,
	// and the call returns EINTR unless the kernel restarts it (select,
	// poll and epoll_wait are never restarted; see signal(7)).
	Interrupted map[string]int
}

// killGroup sends SIGKILL to every process in the group pgid.
func killGroup(pgid int) error {
	return syscall.Kill(-pgid, syscall.SIGKILL)
}

// Gone reports whether no process of the server's group is left, zombies
// included: the kernel has forgotten all of them. Once the server itself
// has exited, its orphans are the test process's to reap (adoptOrphans),
// and Gone reaps those that have exited.
func (s *Server) Gone() bool {
	select {
	case <-s.exited:
		return groupGone(s.Pid)
	default:
		return false
	}
}

// groupGone reaps the exited orphans of the group pgid, whose leader the
// caller has already reaped, and reports whether any process is left.
func groupGone(pgid int) bool {
	for {
		pid, err := syscall.Wait4(-pgid, nil, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			break
		}
	}
	return syscall.Kill(-pgid, 0) == syscall.ESRCH
}
