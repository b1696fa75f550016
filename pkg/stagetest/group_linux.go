package stagetest

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// groupAttr puts a stage in a process group of its own, which its children
// join, and kills it if the test binary dies first.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

var subreaper sync.Once

// adoptOrphans makes the test process a child subreaper (prctl(2)): a
// stage's process that outlives its parent becomes the test's child, not
// init's, so that the harness can see it and reap it. (Not every init
// reaps orphans promptly; in some containers, none does.)
func adoptOrphans() {
	subreaper.Do(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })
}
