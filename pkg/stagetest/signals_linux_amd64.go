package stagetest

import "golang.org/x/sys/unix"

// The calls amd64 keeps beside the newer ones every Linux has:
// unix.Select, unix.Poll and unix.EpollWait use them there.
func init() {
	ioWaits[unix.SYS_SELECT] = "select"
	ioWaits[unix.SYS_POLL] = "poll"
	ioWaits[unix.SYS_EPOLL_WAIT] = "epoll_wait"
	ioWaits[unix.SYS_ACCEPT] = "accept"
}
