package stagetest

import "syscall"

// groupAttr puts a stage in a process group of its own, which its children
// join, and kills it if the test binary dies first.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
