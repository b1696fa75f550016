//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package event

func backendResultCap(be backend) (int, bool) {
	if k, ok := be.(*kqueue); ok {
		return len(k.events), true
	}
	return 0, false
}
