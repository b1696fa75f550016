// Package rot13 is the one ROT13 every stage of the ladder uses, and the
// pool of MAX_LINE buffers the stages that keep their own (03, 04) take
// from.
//
// It is the book's rot13_char, turned into a 256-entry table: the book's
// servers call the function once per byte, while a table lookup costs the
// same whatever the byte, and a stage that transforms a whole buffer at once
// (InPlace) never branches.
//
// Like the book, it does not ask the C library (or Go's unicode package)
// which characters are letters: the book notes that isalpha depends on the
// locale, and a ROT13 that changed with the locale would corrupt a stream.
// Only the 52 ASCII letters rotate; every other byte value, including every
// byte at or above 0x80, passes through unchanged.
package rot13

// table maps every byte value to its ROT13.
var table = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		switch {
		case 'a' <= c && c <= 'm', 'A' <= c && c <= 'M':
			c += 13
		case 'n' <= c && c <= 'z', 'N' <= c && c <= 'Z':
			c -= 13
		}
		t[i] = c
	}
	return t
}()

// Char returns the ROT13 of one byte, like the book's rot13_char.
func Char(c byte) byte {
	return table[c]
}

// InPlace replaces every byte of p with its ROT13.
func InPlace(p []byte) {
	for i, c := range p {
		p[i] = table[c]
	}
}

// Append appends the ROT13 of src to dst and returns the extended slice,
// leaving src untouched.
func Append(dst, src []byte) []byte {
	for _, c := range src {
		dst = append(dst, table[c])
	}
	return dst
}
