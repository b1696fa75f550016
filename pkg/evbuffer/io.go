package evbuffer

// ReadFrom reads from fd what has arrived, at most limit bytes, into the
// buffer's spare room: the rest of the last chunk, then a new one, in one
// readv (evbuffer_read). It returns what read returned: 0 and no error at
// the end of the stream; unix.EAGAIN on a nonblocking descriptor with
// nothing to read.
//
// Unlike libevent, which asks the kernel first how much there is to read
// (ioctl FIONREAD, a system call per read), it reads at most limit bytes and
// leaves the rest for the next readiness.
func (b *Buffer) ReadFrom(fd int, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var vecs [2][]byte
	iov := vecs[:0]
	t := b.tail()
	room := 0
	if t != nil && t.spare() > 0 {
		room = min(t.spare(), limit)
		iov = append(iov, t.buf[t.end:t.end+room])
	}
	// A new chunk only when the last has little room left; if the read
	// does not reach it, it goes straight back to its pool.
	var fresh *chunk
	if room < min(limit, minChunk) {
		fresh = newChunk(min(maxChunk, limit-room))
		iov = append(iov, fresh.buf[:min(len(fresh.buf), limit-room)])
	}
	n, err := readv(fd, iov)
	if fresh != nil && n <= room {
		freeChunk(fresh) // not needed after all
	}
	if n <= 0 {
		return n, err
	}
	orig := b.n
	if room > 0 {
		t.end += min(n, room)
	}
	if n > room {
		fresh.end = n - room
		b.chunks = append(b.chunks, fresh)
	}
	b.n += n
	b.changed(orig, n, 0)
	return n, err
}

// WriteTo writes as much of the buffer to fd as it takes, in one writev of
// up to 64 chunks, and drains what was written (evbuffer_write). It returns
// what write returned: unix.EAGAIN if the descriptor is full.
func (b *Buffer) WriteTo(fd int) (int, error) {
	if b.n == 0 {
		return 0, nil
	}
	var vecs [64][]byte
	iov := vecs[:0]
	for _, c := range b.chunks {
		if len(iov) == len(vecs) {
			break
		}
		if d := c.data(); len(d) > 0 {
			iov = append(iov, d)
		}
	}
	n, err := writev(fd, iov)
	if n > 0 {
		b.Drain(n)
	}
	return n, err
}
