//go:build !linux

package stagetest

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
)

// errNoProc is what the measurements return where there is no /proc.
var errNoProc = errors.New("stagetest: process measurements need Linux's /proc")

// Usage measures the server's process group; it needs Linux's /proc.
func (s *Server) Usage() (Usage, error) { return Usage{}, errNoProc }

// BytesRead returns what the server's processes have read; it needs /proc.
func (s *Server) BytesRead() (int64, error) { return 0, errNoProc }

// Pids returns the pids of the server's process group; it needs /proc.
func (s *Server) Pids() ([]int, error) { return nil, errNoProc }

// SetFileLimit sets the server's descriptor limit; it needs prlimit(2).
func (s *Server) SetFileLimit(n uint64) (uint64, error) { return 0, errNoProc }

// LowestFreeFD returns the server's lowest free descriptor; it needs /proc.
func (s *Server) LowestFreeFD() (int, error) { return 0, errNoProc }

// ListenerHolders returns who holds the listening socket; it needs /proc.
func (s *Server) ListenerHolders() ([]int, error) { return nil, errNoProc }

// WaitInSyscall waits until the server is blocked in a system call; it
// needs /proc.
func (s *Server) WaitInSyscall(ctx context.Context, nr uintptr) error { return errNoProc }

// CountSyscalls counts the server's system calls; it needs Linux's strace.
func (s *Server) CountSyscalls(work func()) (map[string]int, error) { return nil, errNoProc }

// AcceptQueue returns the server's accept queue; it needs /proc.
func (s *Server) AcceptQueue() (int, error) { return 0, errNoProc }

// ConnQueues returns what waits on a connection; it needs /proc.
func ConnQueues(conn net.Conn) (Queues, error) { return Queues{}, errNoProc }

// SignalThreads signals every thread of the server; it needs /proc.
func (s *Server) SignalThreads(ctx context.Context, sig syscall.Signal) (SignalReport, error) {
	return SignalReport{}, errNoProc
}

// CapProcesses caps the server's processes; it needs Linux's cgroups.
func (s *Server) CapProcesses(t testing.TB) (func() error, error) { return nil, ErrNoCgroup }

// ErrNoCgroup says that this machine gives the tests no pids cgroup.
var ErrNoCgroup = errors.New("stagetest: no pids cgroup to cap processes with")
