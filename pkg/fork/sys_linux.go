package fork

import (
	"os"
	"path/filepath"
	"syscall"
)

// selfExe is what a child is started from. /proc/self/exe is this very
// binary even after the file is deleted or replaced, as a redeploy does;
// its path could by then hold nothing, or another program.
func selfExe() (string, error) {
	return "/proc/self/exe", nil
}

// childSys has the kernel kill a child whose parent dies, however it dies,
// SIGKILL included, so that no child serves on, unsupervised. (The signal
// comes when the thread that started the child exits, see prctl(2) and
// golang.org/issue/27505; the Go runtime ends a thread only when a
// goroutine locked to it exits, which the server never does.)
func childSys() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// nameChild gives a child its parent's name where ps, top and ss show it
// (the kernel's comm, 15 bytes at most): started from /proc/self/exe, it
// would otherwise be called "exe". A name it cannot take, it goes without.
func nameChild() {
	os.WriteFile("/proc/self/comm", []byte(filepath.Base(os.Args[0])), 0)
}
