//go:build !linux

package fork

import (
	"os"
	"syscall"
)

// selfExe is what a child is started from: this program's path.
func selfExe() (string, error) {
	return os.Executable()
}

// childSys adds nothing here: without Linux's PR_SET_PDEATHSIG, a child
// outlives a parent that is killed with SIGKILL, until its client leaves.
func childSys() *syscall.SysProcAttr {
	return nil
}

// nameChild does nothing here: ps shows a child by the path it was
// started from, the program's own.
func nameChild() {}
