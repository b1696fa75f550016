//go:build linux

package uring

// Whether this process may use io_uring, and if not, why.

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Available returns nil if this process can make a ring that does all the
// package offers, or an error that says in one line why not, for a server
// to print before it exits 1:
//
//	io_uring: io_uring_setup: operation not permitted (forbidden by a seccomp filter, as a container's default profile does)
func Available() error {
	r, err := New(1)
	if err != nil {
		return err
	}
	r.Close()
	// Multishot recv came in Linux 6.0, and no feature bit says so: an
	// older kernel would fail each recv with EINVAL, client after client.
	// IORING_SETUP_DEFER_TASKRUN (NewLocked) came in 6.1, and setup
	// refuses a flag it does not know: so asking for it tells both.
	return probe(setupSubmitAll | setupSingleIssuer | setupDeferTaskrun)
}

const setupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER (Linux 6.0)

// probe makes a ring of one SQE with setup flags, and closes it; EINVAL
// means that the kernel does not know one of them, so is older than 6.1.
func probe(flags uint32) error {
	p := params{flags: flags}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p)), 0)
	switch errno {
	case 0:
		return unix.Close(int(fd))
	case unix.EINVAL:
		return fmt.Errorf("io_uring: %w (this kernel is older than 6.1, which multishot recv and DEFER_TASKRUN need)", os.NewSyscallError("io_uring_setup", errno))
	}
	return explain(errno)
}

// explain wraps io_uring_setup's errno with its likely cause.
func explain(errno syscall.Errno) error {
	var why string
	switch errno {
	case unix.ENOSYS:
		why = "this kernel has no io_uring: older than 5.1, or built without CONFIG_IO_URING"
	case unix.EPERM:
		why = whyNotPermitted(sysctl("io_uring_disabled"))
	case unix.ENOMEM:
		why = "the rings do not fit under the locked-memory limit (ulimit -l): kernels before 5.12 count them against it"
	case unix.EINVAL:
		why = "this kernel does not know IORING_SETUP_SUBMIT_ALL: older than 5.18"
	default:
		return fmt.Errorf("io_uring: %w", os.NewSyscallError("io_uring_setup", errno))
	}
	return fmt.Errorf("io_uring: %w (%s)", os.NewSyscallError("io_uring_setup", errno), why)
}

// whyNotPermitted tells the sysctl that forbids io_uring (Linux 6.6) from a
// seccomp filter that does, given the sysctl's value (empty if it has
// none).
func whyNotPermitted(disabled string) string {
	switch disabled {
	case "2":
		return "disabled for every process: /proc/sys/kernel/io_uring_disabled is 2"
	case "1":
		return "only for CAP_SYS_ADMIN and the group in /proc/sys/kernel/io_uring_group: /proc/sys/kernel/io_uring_disabled is 1"
	}
	return "forbidden by a seccomp filter, as a container's default profile does"
}

// sysctl returns the value of /proc/sys/kernel/name, or "" if it has none.
func sysctl(name string) string {
	b, _ := os.ReadFile("/proc/sys/kernel/" + name)
	return strings.TrimSpace(string(b))
}
