package event

// timerHeap is the base's timeouts, the nearest first: a binary min-heap,
// as libevent's minheap-internal.h, each event knowing its place in it
// (heapIndex) so that deleting one costs O(log n). An event's place (at)
// is its deadline, or earlier: see set.
type timerHeap struct {
	evs []*Event
	// seq counts placements, to order events placed at the same time. It
	// wraps after 4 billion: at worst, two events due in the same
	// nanosecond then run in the other order.
	seq uint32
}

// first returns the event that times out soonest, or nil.
func (h *timerHeap) first() *Event {
	if len(h.evs) == 0 {
		return nil
	}
	return h.evs[0]
}

// set puts ev in the heap at its deadline, or moves it there; but an
// event already in the heap whose deadline moved later stays where it is,
// ahead of its time, and the heap is left alone. The base's expireTimers
// moves it on when its old place comes up. So a read timeout, which
// starts again with every read, costs nothing here per read; unlike
// libevent, which moves the event in its heap each time (or, for timeouts
// it is told are common, keeps them in a list).
func (h *timerHeap) set(ev *Event) {
	if ev.heapIndex >= 0 && ev.deadline >= ev.at {
		return
	}
	h.place(ev)
}

// place puts ev in the heap at its deadline, after any event placed at the
// same time before it.
func (h *timerHeap) place(ev *Event) {
	h.seq++
	ev.at, ev.seq = ev.deadline, h.seq
	if ev.heapIndex < 0 {
		ev.heapIndex = int32(len(h.evs))
		h.evs = append(h.evs, ev)
	}
	h.fix(int(ev.heapIndex))
}

// remove takes ev out of the heap.
func (h *timerHeap) remove(ev *Event) {
	i := int(ev.heapIndex)
	last := len(h.evs) - 1
	h.swap(i, last)
	h.evs[last] = nil
	h.evs = h.evs[:last]
	ev.heapIndex = -1
	if i < last {
		h.fix(i)
	}
}

func (h *timerHeap) less(i, j int) bool {
	a, b := h.evs[i], h.evs[j]
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (h *timerHeap) swap(i, j int) {
	h.evs[i], h.evs[j] = h.evs[j], h.evs[i]
	h.evs[i].heapIndex = int32(i)
	h.evs[j].heapIndex = int32(j)
}

// fix moves the event at i up or down to where it belongs.
func (h *timerHeap) fix(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		h.swap(i, parent)
		i = parent
	}
	for {
		child := 2*i + 1
		if child >= len(h.evs) {
			return
		}
		if child+1 < len(h.evs) && h.less(child+1, child) {
			child++
		}
		if !h.less(child, i) {
			return
		}
		h.swap(i, child)
		i = child
	}
}
