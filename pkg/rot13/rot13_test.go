package rot13

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

// isASCIILetter is written out by hand here, independently of the table, so
// that the test does not check the table against itself.
func isASCIILetter(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func TestCharEveryByte(t *testing.T) {
	for i := 0; i < 256; i++ {
		c := byte(i)
		got := Char(c)
		assert.Equal(t, c, Char(got), "ROT13 twice of %#02x", c)
		if !isASCIILetter(c) {
			assert.Equal(t, c, got, "non-letter %#02x must pass through", c)
			continue
		}
		assert.True(t, isASCIILetter(got), "letter %q must stay a letter, got %q", c, got)
		assert.NotEqual(t, c, got, "letter %q must change", c)
		// Case is kept and the distance is 13 within the alphabet.
		base := byte('a')
		if c < 'a' {
			base = 'A'
		}
		assert.Equal(t, (c-base+13)%26, got-base, "letter %q", c)
	}
}

func TestKnownText(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"Hello, World!\n", "Uryyb, Jbeyq!\n"},
		{"abcdefghijklmnopqrstuvwxyz", "nopqrstuvwxyzabcdefghijklm"},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "NOPQRSTUVWXYZABCDEFGHIJKLM"},
		{"0123456789 \r\n\x00\x7f", "0123456789 \r\n\x00\x7f"},
		// UTF-8 for "é" and "ß": bytes >= 0x80 are never letters here.
		{"caf\xc3\xa9 stra\xc3\x9fe", "pns\xc3\xa9 fgen\xc3\x9fr"},
		{"", ""},
	} {
		p := []byte(tc.in)
		InPlace(p)
		assert.Equal(t, tc.out, string(p), "InPlace(%q)", tc.in)
		assert.Equal(t, tc.out, string(Append(nil, []byte(tc.in))), "Append(nil, %q)", tc.in)
	}
}

func TestAppendKeepsSourceAndPrefix(t *testing.T) {
	src := []byte("Abc\n")
	dst := Append([]byte("prefix:"), src)
	assert.Equal(t, "prefix:Nop\n", string(dst))
	assert.Equal(t, "Abc\n", string(src), "Append must not modify src")
}

// FuzzRot13 checks the two properties that define ROT13 for any input:
// applied twice it is the identity, and it changes letters and only letters.
func FuzzRot13(f *testing.F) {
	f.Add([]byte("Hello, World!\n"))
	f.Add([]byte{0x00, 0x80, 0xff, 'z', 'Z', '@', '['})
	f.Fuzz(func(t *testing.T, in []byte) {
		once := Append(nil, in)
		if len(once) != len(in) {
			t.Fatalf("length changed: %d -> %d", len(in), len(once))
		}
		for i, c := range in {
			if isASCIILetter(c) == (once[i] == c) {
				t.Fatalf("byte %d: %#02x -> %#02x", i, c, once[i])
			}
		}
		twice := bytes.Clone(once)
		InPlace(twice)
		if !bytes.Equal(twice, in) {
			t.Fatalf("ROT13 twice is not the identity: %q -> %q", in, twice)
		}
	})
}

func BenchmarkInPlace(b *testing.B) {
	p := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog.\n"), 364) // about 16 KiB, MAX_LINE
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		InPlace(p)
	}
}
