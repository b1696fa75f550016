package evbuffer

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// refReadLine is ReadLine on a plain byte slice, written from libevent's
// documentation: the model the fuzz targets hold the chain against.
func refReadLine(model []byte, style EOLStyle) (line, rest []byte, ok bool) {
	at, n := -1, 0
	switch style {
	case EOLLF:
		at, n = bytes.IndexByte(model, '\n'), 1
	case EOLNUL:
		at, n = bytes.IndexByte(model, 0), 1
	case EOLCRLFStrict:
		at, n = bytes.Index(model, []byte("\r\n")), 2
	case EOLCRLF:
		at, n = bytes.IndexByte(model, '\n'), 1
		if at > 0 && model[at-1] == '\r' {
			at, n = at-1, 2
		}
	case EOLAny:
		at = bytes.IndexAny(model, "\r\n")
		for n = 0; at >= 0 && at+n < len(model) && (model[at+n] == '\r' || model[at+n] == '\n'); n++ {
		}
	}
	if at < 0 {
		return nil, model, false
	}
	return model[:at], model[at+n:], true
}

// cut returns a buffer holding data in chunks cut where cuts says.
func cut(data, cuts []byte) *Buffer {
	sizes := make([]int, len(cuts))
	for i, c := range cuts {
		sizes[i] = int(c)
	}
	return chunked(data, sizes...)
}

// FuzzBuffer runs a random program of operations on a Buffer and on a byte
// slice, and checks after each that they hold the same bytes, that the
// results agree, and that the buffer's invariants hold.
func FuzzBuffer(f *testing.F) {
	f.Add([]byte{0, 10, 'h', 'e', 'l', 'l', 'o', '\n', 'w', 'o', 'r', 'l', 8, 3, 2, 4, 9, 1, 'o', 0})
	f.Add([]byte{0, 200, 1, 50, 4, 120, 5, 99, 6, 250, 7, 30, 3, 255})
	f.Add([]byte{0, 100, 10, 11, 20, 0, 5, 'a', 'b', 'c', 'd', 'e', 10, 11, 250, 3, 2})
	f.Fuzz(func(t *testing.T, prog []byte) {
		b := New()
		var model []byte
		// A pipe for WriteTo and ReadFrom, and what is in it.
		var p [2]int
		if err := unix.Pipe(p[:]); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(p[0])
		defer unix.Close(p[1])
		unix.SetNonblock(p[0], true)
		unix.SetNonblock(p[1], true)
		var piped []byte
		next := func() int {
			if len(prog) == 0 {
				return 0
			}
			v := int(prog[0])
			prog = prog[1:]
			return v
		}
		take := func(n int) []byte {
			n = min(n, len(prog))
			p := prog[:n]
			prog = prog[n:]
			return p
		}
		size := func() int { // small, or now and then past a chunk
			n := next()
			if n >= 200 {
				n = (n - 199) * 1000
			}
			return n
		}
		for len(prog) > 0 {
			switch op := next() % 12; op {
			case 10:
				n, err := b.WriteTo(p[1])
				if err != nil && err != unix.EAGAIN {
					t.Fatalf("WriteTo: %v", err)
				}
				n = max(n, 0)
				piped = append(piped, model[:n]...)
				model = model[n:]
			case 11:
				n, err := b.ReadFrom(p[0], 1+size())
				if err != nil && err != unix.EAGAIN {
					t.Fatalf("ReadFrom: %v", err)
				}
				n = max(n, 0)
				model = append(model, piped[:n]...)
				piped = piped[n:]
			case 0:
				p := take(next())
				b.Add(p)
				model = append(model, p...)
			case 1:
				p := take(next())
				b.Prepend(p)
				model = append(append([]byte{}, p...), model...)
			case 2:
				p := make([]byte, size())
				n := b.Remove(p)
				if want := min(len(p), len(model)); n != want || !bytes.Equal(p[:n], model[:n]) {
					t.Fatalf("Remove(%d) = %d %q, want %d %q", len(p), n, p[:n], want, model[:want])
				}
				model = model[n:]
			case 3:
				n := size()
				b.Drain(n)
				model = model[min(n, len(model)):]
			case 4:
				other := New()
				p := bytes.Repeat(take(next()), 1+next()%50)
				other.Add(p)
				b.AddBuffer(other)
				check(t, other)
				if other.Len() != 0 {
					t.Fatalf("AddBuffer left %d bytes behind", other.Len())
				}
				model = append(model, p...)
			case 5:
				other := New()
				n := size()
				moved := b.RemoveBuffer(other, n)
				check(t, other)
				if want := min(n, len(model)); moved != want || !bytes.Equal(contents(other), model[:want]) {
					t.Fatalf("RemoveBuffer(%d) moved %d", n, moved)
				}
				model = model[moved:]
			case 6:
				n := size()
				got := b.Pullup(n)
				if n > len(model) {
					if got != nil {
						t.Fatalf("Pullup(%d) of %d bytes: %q", n, len(model), got)
					}
				} else if !bytes.Equal(got, model[:n]) {
					t.Fatalf("Pullup(%d) = %q, want %q", n, got, model[:n])
				}
			case 7:
				n := size()
				var got []byte
				for _, v := range b.Peek(n) {
					got = append(got, v...)
				}
				if want := model[:min(n, len(model))]; !bytes.Equal(got, want) {
					t.Fatalf("Peek(%d) = %q, want %q", n, got, want)
				}
			case 8:
				style := EOLStyle(next() % 5)
				got, ok := b.ReadLine(style)
				want, rest, wantOK := refReadLine(model, style)
				if ok != wantOK || !bytes.Equal(got, want) {
					t.Fatalf("ReadLine(%d) = %q %v, want %q %v", style, got, ok, want, wantOK)
				}
				model = rest
			case 9:
				what := take(1 + next()%4)
				start := next()
				got := b.Search(what, start)
				want := -1
				if start <= len(model) {
					if i := bytes.Index(model[start:], what); i >= 0 {
						want = start + i
					}
				}
				if got != want {
					t.Fatalf("Search(%q, %d) = %d, want %d", what, start, got, want)
				}
			}
			check(t, b)
			if !bytes.Equal(contents(b), model) {
				t.Fatalf("the buffer holds %q, the model %q", contents(b), model)
			}
		}
	})
}

// FuzzReadLine reads every line, in every style, from data cut into
// chunks anywhere, and holds the results to the model's.
func FuzzReadLine(f *testing.F) {
	f.Add([]byte("one\r\ntwo\rthree\n\x00four\r"), []byte{2, 3, 1, 5}, uint8(0))
	f.Add([]byte("\r\n\r\n\n\r"), []byte{1, 1, 1}, uint8(2))
	f.Fuzz(func(t *testing.T, data, cuts []byte, s uint8) {
		style := EOLStyle(s % 5)
		b := cut(data, cuts)
		model := data
		for {
			got, ok := b.ReadLine(style)
			check(t, b)
			want, rest, wantOK := refReadLine(model, style)
			if ok != wantOK || !bytes.Equal(got, want) {
				t.Fatalf("style %d: ReadLine = %q %v, want %q %v", style, got, ok, want, wantOK)
			}
			if !ok {
				break
			}
			model = rest
		}
		if !bytes.Equal(contents(b), model) {
			t.Fatalf("left %q, want %q", contents(b), model)
		}
	})
}

// FuzzSearch searches data cut into chunks anywhere, and holds the result
// to bytes.Index's.
func FuzzSearch(f *testing.F) {
	f.Add([]byte("hello world"), []byte{3, 4}, []byte("o w"), uint8(0))
	f.Add([]byte("aaaab"), []byte{1, 1, 1, 1}, []byte("aab"), uint8(1))
	f.Fuzz(func(t *testing.T, data, cuts, what []byte, start uint8) {
		b := cut(data, cuts)
		got := b.Search(what, int(start))
		want := -1
		if int(start) <= len(data) {
			if i := bytes.Index(data[start:], what); i >= 0 {
				want = int(start) + i
			}
		}
		if got != want {
			t.Fatalf("Search(%q, %d) in %q = %d, want %d", what, start, data, got, want)
		}
	})
}
