package stagetest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// CapProcesses holds the server's process group to the processes and
// threads it runs now: from then on a fork or clone fails with EAGAIN, the
// way it does when a machine or a container reaches its process limit. It
// uses a pids cgroup of the server's own, since RLIMIT_NPROC does not
// bind root (which CI is). It returns a function that lifts the cap; when
// the test ends the server leaves the cgroup and the cgroup is removed.
//
// It needs a pids controller it may create a cgroup in (cgroup v1's
// pids hierarchy, or v2 with pids enabled at its root), and returns an
// error wrapping ErrNoCgroup when there is none.
func (s *Server) CapProcesses(t testing.TB) (lift func() error, err error) {
	root, v2, err := pidsRoot()
	if err != nil {
		return nil, err
	}
	home, err := cgroupOf(s.Pid, v2)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, fmt.Sprintf("tinyasync-%d", s.Pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
	}
	t.Cleanup(func() {
		// Back where they were, the ones still running, so that the
		// cgroup can go.
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(root, home, "cgroup.procs"), []byte(pid), 0)
			}
		}
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing the cgroup: %v", err)
		}
	})
	pids, err := s.Pids()
	if err != nil {
		return nil, err
	}
	for _, pid := range pids {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return nil, fmt.Errorf("moving %d into %s: %w", pid, dir, err)
		}
	}
	now, err := os.ReadFile(filepath.Join(dir, "pids.current"))
	if err != nil {
		return nil, err
	}
	limit := filepath.Join(dir, "pids.max")
	if err := os.WriteFile(limit, []byte(strings.TrimSpace(string(now))), 0); err != nil {
		return nil, err
	}
	return func() error { return os.WriteFile(limit, []byte("max"), 0) }, nil
}

// ErrNoCgroup says that this machine gives the tests no pids cgroup.
var ErrNoCgroup = errors.New("stagetest: no pids cgroup to cap processes with")

// pidsRoot finds where the pids controller is mounted: cgroup v1's own
// hierarchy, or v2's unified one if pids is enabled for its children.
func pidsRoot() (root string, v2 bool, err error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// device mountpoint type options dump pass
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		switch fields[2] {
		case "cgroup":
			for _, opt := range strings.Split(fields[3], ",") {
				if opt == "pids" {
					return fields[1], false, nil
				}
			}
		case "cgroup2":
			b, err := os.ReadFile(filepath.Join(fields[1], "cgroup.subtree_control"))
			if err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " pids ") {
				root, v2 = fields[1], true
			}
		}
	}
	if root == "" {
		return "", false, ErrNoCgroup
	}
	return root, v2, sc.Err()
}

// cgroupOf returns the pids cgroup pid is in, relative to the root.
func cgroupOf(pid int, v2 bool) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if v2 && parts[0] == "0" || !v2 && strings.Contains(","+parts[1]+",", ",pids,") {
			return parts[2], nil
		}
	}
	return "", fmt.Errorf("%w: process %d is in none", ErrNoCgroup, pid)
}
