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
	CPU     time.Duration // user and system time, including reaped children's
	FDs     int           // open descriptors, summed
}

// killGroup sends SIGKILL to every process in the group pgid.
func killGroup(pgid int) error {
	return syscall.Kill(-pgid, syscall.SIGKILL)
}

// Gone reports whether no process of the server's group is left, zombies
// included: the kernel has forgotten all of them.
func (s *Server) Gone() bool {
	return syscall.Kill(-s.Pid, 0) == syscall.ESRCH
}
