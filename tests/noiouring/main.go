//go:build linux

// Command noiouring runs a program where io_uring is forbidden, as a
// container's default seccomp profile forbids it (Docker's, since 2023):
// io_uring_setup(2) fails with EPERM, and everything else is allowed. The
// conformance suite runs 07, and 05 with EVENT_IOURING, under it, to check
// that each says why in one line and exits 1.
//
//	go run ./tests/noiouring ./bin/07-completion-server
package main

import (
	"fmt"
	"os"
	"os/exec"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: noiouring PROGRAM [ARG...]")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "noiouring: %v\n", err)
		os.Exit(2)
	}
	if err := forbidIOURing(); err != nil {
		fmt.Fprintf(os.Stderr, "noiouring: %v\n", err)
		os.Exit(2)
	}
	// The filter stays through execve, for the program and its children.
	err = unix.Exec(path, os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "noiouring: exec %s: %v\n", path, err)
	os.Exit(2)
}

// forbidIOURing installs a seccomp filter, on every thread of this
// process, that fails io_uring_setup with EPERM. A filter is a little
// program in classic BPF that the kernel runs at each system call, on its
// number and arguments (struct seccomp_data), and whose answer says what
// becomes of the call. io_uring_setup is 425 on every architecture: system
// calls added since Linux 5.1 share their numbers.
func forbidIOURing() error {
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // the system call's number (seccomp_data.nr)
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_SETUP, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// Without privileges, a process may install a filter only once it has
	// promised never to gain any (by a setuid program, say).
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", err)
	}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return os.NewSyscallError("seccomp", errno)
	}
	return nil
}
