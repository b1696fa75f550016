package event

// methods is Linux's preference list: epoll first, since its cost does not
// grow with the number of descriptors watched.
var methods = []method{
	{"epoll", newEpoll},
	{"poll", newPoll},
	{"select", newSelect},
}
