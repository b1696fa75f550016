package event

func backendResultCap(be backend) (int, bool) {
	if e, ok := be.(*epoll); ok {
		return len(e.events), true
	}
	return 0, false
}
