package event

// methods is Linux's preference list: epoll first, since its cost does not
// grow with the number of descriptors watched. io_uring comes last: as
// libevent's IOCP, it is a choice to make (EVENT_IOURING), not a default
// (uring.go).
var methods = []method{
	{"epoll", newEpoll},
	{"poll", newPoll},
	{"select", newSelect},
	{"io_uring", newUring},
}
