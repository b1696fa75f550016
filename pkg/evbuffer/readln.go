package evbuffer

// EOLStyle says what ends a line for ReadLine: libevent's enum
// evbuffer_eol_style.
type EOLStyle int

const (
	// EOLAny: any run of carriage returns and line feeds ends a line, and
	// all of it is drained (EVBUFFER_EOL_ANY). A lone "\r" counts.
	EOLAny EOLStyle = iota
	// EOLCRLF: a line feed, with the carriage return before it if there is
	// one (EVBUFFER_EOL_CRLF).
	EOLCRLF
	// EOLCRLFStrict: exactly "\r\n" (EVBUFFER_EOL_CRLF_STRICT); a lone
	// "\r" or "\n" is part of the line.
	EOLCRLFStrict
	// EOLLF: a line feed (EVBUFFER_EOL_LF); a "\r" before it is part of
	// the line.
	EOLLF
	// EOLNUL: a NUL byte (EVBUFFER_EOL_NUL).
	EOLNUL
)

// ReadLine removes the first line from the buffer and returns it, without
// its end of line, which is drained too (evbuffer_readln). If the buffer
// holds no complete line, it returns false and leaves the buffer as it is.
// The line is a copy, the caller's to keep.
func (b *Buffer) ReadLine(style EOLStyle) ([]byte, bool) {
	at, eol := b.findEOL(style)
	if at < 0 {
		return nil, false
	}
	line := make([]byte, at)
	b.copyOut(line)
	b.Drain(at + eol) // the line and its end, in one drain
	return line, true
}

// findEOL returns where the first end of line starts and how long it is,
// or -1.
func (b *Buffer) findEOL(style EOLStyle) (at, n int) {
	switch style {
	case EOLLF:
		return b.Search([]byte{'\n'}, 0), 1
	case EOLNUL:
		return b.Search([]byte{0}, 0), 1
	case EOLCRLFStrict:
		return b.Search([]byte("\r\n"), 0), 2
	case EOLCRLF:
		at := b.Search([]byte{'\n'}, 0)
		if c, _ := b.at(at - 1); at > 0 && c == '\r' {
			return at - 1, 2
		}
		return at, 1
	case EOLAny:
		at := b.indexAny(0)
		if at < 0 {
			return -1, 0
		}
		n := 1
		for c, ok := b.at(at + n); ok && (c == '\r' || c == '\n'); c, ok = b.at(at + n) {
			n++
		}
		return at, n
	}
	return -1, 0
}

// indexAny returns the position of the first '\r' or '\n' at or after
// start, or -1.
func (b *Buffer) indexAny(start int) int {
	pos := 0
	for _, c := range b.chunks {
		d := c.data()
		for i := max(start-pos, 0); i < len(d); i++ {
			if d[i] == '\r' || d[i] == '\n' {
				return pos + i
			}
		}
		pos += len(d)
	}
	return -1
}
