package stagetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTick is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100
// on every Linux architecture Go runs on (proc(5)).
const clockTick = 10 * time.Millisecond

// procStat holds the fields of /proc/PID/stat the harness uses.
type procStat struct {
	pid, pgrp, threads int
	state              byte
	cpuTicks           int64 // utime + stime
	reapedTicks        int64 // cutime + cstime: children it has waited for
	rssPages           int64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may hold anything, spaces and
	// parentheses included: the fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 of proc(5): state.
	field := func(n int) int64 {
		v, _ := strconv.ParseInt(f[n-3], 10, 64)
		return v
	}
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return procStat{
		pid:         pid,
		state:       f[0][0],
		pgrp:        int(field(5)),
		cpuTicks:    field(14) + field(15),
		reapedTicks: field(16) + field(17),
		threads:     int(field(20)),
		rssPages:    field(24),
	}, nil
}

// members returns the stat of every process in the group pgid.
func members(pgid int) ([]procStat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.pgrp != pgid {
			continue // gone since ReadDir, or not ours
		}
		out = append(out, st)
	}
	return out, nil
}

// Usage measures the server's process group now.
func (s *Server) Usage() (Usage, error) {
	ms, err := members(s.Pid)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	page := int64(os.Getpagesize())
	for _, m := range ms {
		u.Procs++
		if m.state == 'Z' {
			u.Zombies++
		}
		u.Threads += m.threads
		u.RSS += m.rssPages * page
		if cpu, ok := schedCPU(m.pid); ok {
			u.CPU += cpu
		} else {
			u.CPU += time.Duration(m.cpuTicks) * clockTick
		}
		u.CPU += time.Duration(m.reapedTicks) * clockTick
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", m.pid)); err == nil {
			u.FDs += len(fds)
		}
		u.PeakRSS += kibField(fmt.Sprintf("/proc/%d/status", m.pid), "VmHWM:")
		u.PSS += kibField(fmt.Sprintf("/proc/%d/smaps_rollup", m.pid), "Pss:")
	}
	return u, nil
}

// schedCPU returns the CPU time a process's threads have run, to the
// nanosecond, from /proc/PID/task/TID/schedstat. /proc/PID/stat counts in
// ticks of 10 ms, rounded down for each process: summed over a thousand
// children of 02, each a few milliseconds busy, that rounds to nothing.
func schedCPU(pid int) (time.Duration, bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // gone since ReadDir
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(ns)
	}
	return total, true
}

// kibField returns, in bytes, the value of the "Name:   123 kB" line of a
// /proc file, or 0.
func kibField(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kib, _ := strconv.ParseInt(f[0], 10, 64)
				return kib << 10
			}
		}
	}
	return 0
}

// BytesRead returns how many bytes the server's processes have read with
// read(2) and readv(2) so far, sockets included: the rchar of each
// /proc/PID/io, summed over the process group. A check that knows a
// client's bytes wait unread tells from it how much the server read from
// the others meanwhile. (recv(2) and recvmsg(2) are not counted.)
func (s *Server) BytesRead() (int64, error) {
	ms, err := members(s.Pid)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, m := range ms {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", m.pid))
		if err != nil {
			continue // gone since members
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "rchar:"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/io: %q", m.pid, line)
				}
				total += n
			}
		}
	}
	return total, nil
}

// Pids returns the pids of the server's process group, the server first.
func (s *Server) Pids() ([]int, error) {
	ms, err := members(s.Pid)
	if err != nil {
		return nil, err
	}
	pids := []int{s.Pid}
	for _, m := range ms {
		if m.pid != s.Pid {
			pids = append(pids, m.pid)
		}
	}
	return pids, nil
}

// SetFileLimit sets the server process's soft limit on open descriptors
// (RLIMIT_NOFILE), so that a descriptor numbered n or more cannot be
// opened, and returns the limit it replaced. Children started from then on
// inherit it. Go raises the soft limit to the hard one when a program
// starts, so this is applied to the running process with prlimit(2).
func (s *Server) SetFileLimit(n uint64) (old uint64, err error) {
	var lim unix.Rlimit
	if err := unix.Prlimit(s.Pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		return 0, fmt.Errorf("prlimit: %w", err)
	}
	old, lim.Cur = lim.Cur, n
	if err := unix.Prlimit(s.Pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		return 0, fmt.Errorf("prlimit: %w", err)
	}
	return old, nil
}

// LowestFreeFD returns the lowest descriptor number the server process does
// not have open: the number its next accept would get. A file limit of
// that number leaves it no descriptor to open.
func (s *Server) LowestFreeFD() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.Pid))
	if err != nil {
		return 0, err
	}
	open := map[int]bool{}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			open[n] = true
		}
	}
	n := 0
	for open[n] {
		n++
	}
	return n, nil
}

// ListenerHolders returns the pids in the server's group that hold a
// descriptor of a TCP socket listening on the server's port.
func (s *Server) ListenerHolders() ([]int, error) {
	port, err := strconv.ParseUint(s.Port(), 10, 16)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	if err := listeningInodes(uint16(port), inodes); err != nil {
		return nil, err
	}
	ms, err := members(s.Pid)
	if err != nil {
		return nil, err
	}
	var holders []int
	for _, m := range ms {
		dir := fmt.Sprintf("/proc/%d/fd", m.pid)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			link, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err == nil && inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				holders = append(holders, m.pid)
				break
			}
		}
	}
	return holders, nil
}

// WaitInSyscall waits until a thread of the server process is blocked in
// the system call numbered nr (unix.SYS_ACCEPT4, unix.SYS_EPOLL_WAIT), as
// /proc/PID/task/TID/syscall shows it, or until ctx ends. A test uses it to
// act at a known point of the server's loop, without sleeping.
func (s *Server) WaitInSyscall(ctx context.Context, nr uintptr) error {
	want := strconv.FormatUint(uint64(nr), 10) + " "
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.Pid))
		if err != nil {
			return err
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", s.Pid, t.Name()))
			if err == nil && strings.HasPrefix(string(b), want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no thread of %d blocked in system call %d: %w", s.Pid, nr, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// CountSyscalls counts the system calls the server's process makes, in all
// its threads, while work runs: it attaches strace -c -f for the time, and
// returns the count by call ("read", "epoll_pwait"). It needs strace
// (Debian's package strace), and the right to trace the process.
func (s *Server) CountSyscalls(work func()) (map[string]int, error) {
	path, err := exec.LookPath("strace")
	if err != nil {
		return nil, fmt.Errorf("strace is not installed (apt-get install strace): %w", err)
	}
	out, err := os.CreateTemp("", "strace-")
	if err != nil {
		return nil, err
	}
	out.Close()
	defer os.Remove(out.Name())
	// Every process of the server's tree: 02's children, forked before
	// the count starts, serve the lines, and -f follows only new ones.
	// (Not a zombie: there is nothing left of it to trace.)
	ms, err := members(s.Pid)
	if err != nil {
		return nil, err
	}
	args := []string{"-c", "-f", "-o", out.Name()}
	pids := 0
	for _, m := range ms {
		if m.state != 'Z' {
			args = append(args, "-p", strconv.Itoa(m.pid))
			pids++
		}
	}
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// strace says when it has attached to each, or could not (one that
	// exited meanwhile); the work starts after.
	sc := bufio.NewScanner(stderr)
	told := 0
	for told < pids && sc.Scan() {
		if strings.Contains(sc.Text(), "attach") {
			told++
		}
	}
	if told < pids {
		cmd.Wait()
		return nil, fmt.Errorf("strace told of %d of the %d processes of %d", told, pids, s.Pid)
	}
	go io.Copy(io.Discard, stderr)
	work()
	cmd.Process.Signal(os.Interrupt) // detach, write the table, and die of it
	cmd.Wait()
	table, err := os.ReadFile(out.Name())
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(table), "\n") {
		// % time  seconds  usecs/call  calls  [errors]  syscall
		f := strings.Fields(line)
		if len(f) < 5 || strings.HasPrefix(line, "%") || strings.HasPrefix(line, "-") {
			continue
		}
		calls, err := strconv.Atoi(f[3])
		if err == nil && f[len(f)-1] != "total" {
			counts[f[len(f)-1]] = calls
		}
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("strace counted nothing:\n%s", table)
	}
	return counts, nil
}
