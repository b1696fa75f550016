//go:build !linux

package stagetest

import "syscall"

// groupAttr puts a stage in a process group of its own, which its children
// join.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// adoptOrphans does nothing here: only Linux has child subreapers.
func adoptOrphans() {}
