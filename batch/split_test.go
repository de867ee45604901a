package batch

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/linxGnu/gosmpp/data"
	xunicode "golang.org/x/text/encoding/unicode"
)

// TestParts holds the segment rules' vectors. Each row is checked through
// Encode, CountParts and Split, which must all agree.
func TestParts(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name  string
		text  string
		cs    Charset
		units int
		parts int
	}{
		{"gsm empty", "", CharsetGSM, 0, 1},
		{"gsm 160", a(160), CharsetGSM, 160, 1},
		{"gsm 161", a(161), CharsetGSM, 161, 2},
		{"gsm 306", a(306), CharsetGSM, 306, 2},
		{"gsm 307", a(307), CharsetGSM, 307, 3},
		{"gsm 1071", a(1071), CharsetGSM, 1071, 7},
		{"gsm 1072", a(1072), CharsetGSM, 1072, 8},
		{"gsm 80 euro", strings.Repeat("€", 80), CharsetGSM, 160, 1},
		{"gsm 81 euro", strings.Repeat("€", 81), CharsetGSM, 162, 2},
		{"gsm 152 a and a brace fit one sms", a(152) + "{", CharsetGSM, 154, 1},
		{"gsm escape pair moves whole", a(152) + "{" + a(10), CharsetGSM, 164, 2},
		{"gsm 153 euro", strings.Repeat("€", 153), CharsetGSM, 306, 3},
		{"gsm transliteration counts its result", a(158) + "…", CharsetGSM, 161, 2},
		{"ucs2 empty", "", CharsetUnicode, 0, 1},
		{"ucs2 70", strings.Repeat("Ж", 70), CharsetUnicode, 70, 1},
		{"ucs2 71", strings.Repeat("Ж", 71), CharsetUnicode, 71, 2},
		{"ucs2 134", strings.Repeat("Ж", 134), CharsetUnicode, 134, 2},
		{"ucs2 135", strings.Repeat("Ж", 135), CharsetUnicode, 135, 3},
		{"ucs2 35 emoji", strings.Repeat("😀", 35), CharsetUnicode, 70, 1},
		{"ucs2 36 emoji", strings.Repeat("😀", 36), CharsetUnicode, 72, 2},
		{"ucs2 surrogate pair moves whole", strings.Repeat("Ж", 66) + "😀" + strings.Repeat("Ж", 10), CharsetUnicode, 78, 2},
		{"ucs2 67 emoji", strings.Repeat("😀", 67), CharsetUnicode, 134, 3},
		{"auto goes ucs2", "Ж" + a(70), CharsetAuto, 71, 2},
	}
	for _, tt := range tests {
		e := Encode(tt.text, tt.cs)
		if e.Units != tt.units || e.Parts != tt.parts {
			t.Errorf("%s: Encode gives %d units in %d parts, want %d in %d", tt.name, e.Units, e.Parts, tt.units, tt.parts)
		}
		if n := CountParts(e.Text, e.Encoding); n != tt.parts {
			t.Errorf("%s: CountParts = %d, want %d", tt.name, n, tt.parts)
		}
		if n := len(Split(e.Text, e.Encoding)); n != tt.parts {
			t.Errorf("%s: len(Split) = %d, want %d", tt.name, n, tt.parts)
		}
	}
}

func TestSplitPayloads(t *testing.T) {
	a := func(n int) []byte { return bytes.Repeat([]byte{0x61}, n) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	zh := bytes.Repeat([]byte{0x04, 0x16}, 66)
	tests := []struct {
		name string
		text string
		enc  Encoding
		want [][]byte
	}{
		{"gsm empty", "", EncodingGSM, [][]byte{{}}},
		{"ucs2 empty", "", EncodingUCS2, [][]byte{{}}},
		{"gsm codes", "@Hé{€\n", EncodingGSM, [][]byte{{0x00, 0x48, 0x05, 0x1B, 0x28, 0x1B, 0x65, 0x0A}}},
		{"gsm unknown character is a question mark", "aЖb", EncodingGSM, [][]byte{{0x61, 0x3F, 0x62}}},
		{"ucs2 utf-16be", "aЖ😀", EncodingUCS2, [][]byte{{0x00, 0x61, 0x04, 0x16, 0xD8, 0x3D, 0xDE, 0x00}}},
		{"gsm 161", strings.Repeat("a", 161), EncodingGSM, [][]byte{a(153), a(8)}},
		{"gsm escape pair moves to the next part",
			strings.Repeat("a", 152) + "{" + strings.Repeat("a", 10), EncodingGSM,
			[][]byte{a(152), cat([]byte{0x1B, 0x28}, a(10))}},
		{"gsm escape pair ending a part stays",
			strings.Repeat("a", 151) + "{" + strings.Repeat("a", 10), EncodingGSM,
			[][]byte{cat(a(151), []byte{0x1B, 0x28}), a(10)}},
		{"ucs2 surrogate pair moves to the next part",
			strings.Repeat("Ж", 66) + "😀" + "ЖЖЖЖ", EncodingUCS2,
			[][]byte{zh, {0xD8, 0x3D, 0xDE, 0x00, 0x04, 0x16, 0x04, 0x16, 0x04, 0x16, 0x04, 0x16}}},
	}
	for _, tt := range tests {
		got := Split(tt.text, tt.enc)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Split = % x, want % x", tt.name, got, tt.want)
		}
	}
}

// TestSplitPartsAreCapped checks that a caller appending to one payload
// cannot overwrite the next.
func TestSplitPartsAreCapped(t *testing.T) {
	parts := Split(strings.Repeat("a", 200), EncodingGSM)
	_ = append(parts[0], 'X')
	if parts[1][0] != 'a' {
		t.Errorf("appending to part 1 overwrote part 2: % x", parts[1][:4])
	}
}

// TestSplitMatchesGosmpp checks the septet and UTF-16 values against two
// independent encoders: gosmpp's unpacked GSM 7-bit codec and x/text's
// UTF-16BE.
func TestSplitMatchesGosmpp(t *testing.T) {
	texts := []string{
		gsmBasicChars,
		gsmExtensionChars,
		"Prix: 5€ {promo} [été] ~ça| \\o/ ^^",
		strings.Repeat("Ünïcödé? No: Ünicode! ", 20),
	}
	utf16be := xunicode.UTF16(xunicode.BigEndian, xunicode.IgnoreBOM).NewEncoder()
	for _, text := range texts {
		g := Encode(text, CharsetGSM).Text
		want, err := data.GSM7BIT.Encode(g)
		if err != nil {
			t.Fatalf("gosmpp cannot encode %q: %v", g, err)
		}
		if got := bytes.Join(Split(g, EncodingGSM), nil); !bytes.Equal(got, want) {
			t.Errorf("GSM payload of %q:\n% x\nwant\n% x", g, got, want)
		}
		want, err = utf16be.Bytes([]byte(text))
		if err != nil {
			t.Fatalf("x/text cannot encode %q: %v", text, err)
		}
		if got := bytes.Join(Split(text, EncodingUCS2), nil); !bytes.Equal(got, want) {
			t.Errorf("UCS-2 payload of %q:\n% x\nwant\n% x", text, got, want)
		}
	}
}

func TestUnknownEncodingPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"CountParts": func() { CountParts("x", "utf8") },
		"Split":      func() { Split("x", "utf8") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with encoding \"utf8\" did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestUDH(t *testing.T) {
	tests := []struct {
		ref        byte
		total, seq int
		want       []byte
	}{
		{0x42, 2, 1, []byte{0x05, 0x00, 0x03, 0x42, 0x02, 0x01}},
		{0x42, 2, 2, []byte{0x05, 0x00, 0x03, 0x42, 0x02, 0x02}},
		{0x00, 1, 1, []byte{0x05, 0x00, 0x03, 0x00, 0x01, 0x01}},
		{0xFF, 255, 255, []byte{0x05, 0x00, 0x03, 0xFF, 0xFF, 0xFF}},
	}
	for _, tt := range tests {
		if got := UDH(tt.ref, tt.total, tt.seq); !bytes.Equal(got, tt.want) {
			t.Errorf("UDH(%#x, %d, %d) = % x, want % x", tt.ref, tt.total, tt.seq, got, tt.want)
		}
	}
	bad := []struct{ total, seq int }{{0, 0}, {2, 0}, {2, 3}, {256, 1}, {-1, 1}}
	for _, b := range bad {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("UDH(0, %d, %d) did not panic", b.total, b.seq)
				}
			}()
			UDH(0, b.total, b.seq)
		}()
	}
}

// TestCountPartsAllocations: the parser counts parts for every recipient.
func TestCountPartsAllocations(t *testing.T) {
	for _, enc := range []Encoding{EncodingGSM, EncodingUCS2} {
		if n := testing.AllocsPerRun(100, func() { CountParts(benchLong, enc) }); n != 0 {
			t.Errorf("CountParts(_, %q) allocates %v times, want 0", enc, n)
		}
	}
}

// checkSplit asserts everything Split promises for a text in enc, and
// returns the number of parts.
func checkSplit(t *testing.T, text string, enc Encoding) int {
	t.Helper()
	parts := Split(text, enc)
	if n := CountParts(text, enc); n != len(parts) {
		t.Fatalf("CountParts(%q, %q) = %d, len(Split) = %d", text, enc, n, len(parts))
	}
	gsm := enc == EncodingGSM
	single, multi := 70, 67
	if gsm {
		single, multi = 160, 153
	}
	limit := single
	if len(parts) > 1 {
		limit = multi
	}
	var units []int // each part's units
	for i, p := range parts {
		n := len(p)
		if !gsm {
			if n%2 != 0 {
				t.Fatalf("%q: UCS-2 part %d has an odd length %d", text, i+1, n)
			}
			n /= 2
		}
		if n > limit {
			t.Fatalf("%q: part %d holds %d units, limit %d", text, i+1, n, limit)
		}
		if gsm && endsInEscape(p) {
			t.Fatalf("%q: part %d ends with a lone escape: % x", text, i+1, p)
		}
		if !gsm && len(p) >= 2 && utf16.IsSurrogate(rune(binary.BigEndian.Uint16(p[len(p)-2:]))) &&
			binary.BigEndian.Uint16(p[len(p)-2:]) < 0xDC00 {
			t.Fatalf("%q: part %d ends with a high surrogate: % x", text, i+1, p)
		}
		units = append(units, n)
	}
	all := bytes.Join(parts, nil)
	if gsm {
		if got := DecodeGSM(all); got != text {
			t.Fatalf("GSM parts of %q decode to %q", text, got)
		}
	} else {
		u := make([]uint16, len(all)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(all[2*i:])
		}
		if got, want := string(utf16.Decode(u)), string([]rune(text)); got != want {
			t.Fatalf("UCS-2 parts of %q decode to %q", text, got)
		}
	}
	// Greedy: a part is only cut when the next character would not fit.
	for i := 0; i+1 < len(parts); i++ {
		next := 1
		if gsm && parts[i+1][0] == gsmEscape {
			next = 2
		}
		if !gsm && utf16.IsSurrogate(rune(binary.BigEndian.Uint16(parts[i+1]))) {
			next = 2
		}
		if units[i]+next <= multi {
			t.Fatalf("%q: part %d cut at %d units though %d more fit", text, i+1, units[i], next)
		}
	}
	return len(parts)
}

// endsInEscape reports whether p ends inside an escape pair.
func endsInEscape(p []byte) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == gsmEscape {
			if i+1 == len(p) {
				return true
			}
			i++
		}
	}
	return false
}

// TestSplitProperties runs the fuzz target's checks on texts built from the
// characters that matter at part boundaries, at every length around them, so
// that a plain go test covers what random bytes rarely reach.
func TestSplitProperties(t *testing.T) {
	alphabet := []rune{'a', 'a', 'a', '€', '{', 'é', 'Ж', '😀', 'ç', '’', 'Ж', '\n'}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 500; n++ {
		for range 4 {
			r := make([]rune, n)
			for i := range r {
				r[i] = alphabet[rng.IntN(len(alphabet))]
			}
			text := string(r)
			for _, cs := range []Charset{CharsetGSM, CharsetUnicode, CharsetAuto} {
				e := Encode(text, cs)
				if parts := checkSplit(t, e.Text, e.Encoding); parts != e.Parts {
					t.Fatalf("Encode(%q, %q).Parts = %d, Split gives %d", text, cs, e.Parts, parts)
				}
				checkChanges(t, text, e)
			}
		}
	}
}

func FuzzSplit(f *testing.F) {
	seeds := []string{
		"",
		strings.Repeat("a", 152) + "{" + strings.Repeat("a", 10),
		strings.Repeat("€", 81),
		strings.Repeat("a", 306) + "}",
		strings.Repeat("Ж", 66) + "😀" + strings.Repeat("Ж", 10),
		strings.Repeat("😀", 36),
		"Crème brûlée à 5€ — “top” Ж!",
		"a\xffb\u0301",
		benchTranslit,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, cs := range []Charset{CharsetGSM, CharsetUnicode, CharsetAuto} {
			e := Encode(text, cs)
			if n := checkSplit(t, e.Text, e.Encoding); n != e.Parts {
				t.Fatalf("Encode(%q, %q).Parts = %d, Split gives %d", text, cs, e.Parts, n)
			}
			units := 0
			for _, r := range e.Text {
				if e.Encoding == EncodingGSM {
					_, w := gsmLookup(r)
					if w == 0 {
						t.Fatalf("Encode(%q, %q) left non-GSM %q", text, cs, r)
					}
					units += w
				} else {
					units += utf16Width(r)
				}
			}
			if units != e.Units {
				t.Fatalf("Encode(%q, %q).Units = %d, want %d", text, cs, e.Units, units)
			}
			checkChanges(t, text, e)
			removed := false
			for _, ch := range e.Changes {
				removed = removed || ch.To == ""
			}
			switch {
			case cs == CharsetUnicode && (e.Text != text || e.Encoding != EncodingUCS2):
				t.Fatalf("Encode(%q, unicode) = %+v", text, e)
			case cs == CharsetAuto && removed:
				t.Fatalf("Encode(%q, auto) removed characters: %+v", text, e)
			case cs == CharsetAuto && e.Encoding == EncodingUCS2 &&
				(e.Text != text || !hasRemoval(Encode(text, CharsetGSM))):
				t.Fatalf("Encode(%q, auto) = %+v without need", text, e)
			}
		}
		// Split and CountParts agree even on text GSM cannot represent.
		if n, m := CountParts(text, EncodingGSM), len(Split(text, EncodingGSM)); n != m {
			t.Fatalf("raw %q: CountParts %d, len(Split) %d", text, n, m)
		}
	})
}

func hasRemoval(e Encoded) bool {
	for _, c := range e.Changes {
		if c.To == "" {
			return true
		}
	}
	return false
}

// checkChanges asserts that applying e.Changes to text gives e.Text.
func checkChanges(t *testing.T, text string, e Encoded) {
	t.Helper()
	if e.Encoding != EncodingGSM {
		if e.Changes != nil {
			t.Fatalf("ucs2 encoding of %q has changes", text)
		}
		return
	}
	var b strings.Builder
	last := 0
	for _, c := range e.Changes {
		if c.Offset < last {
			t.Fatalf("%q: change %+v out of order", text, c)
		}
		r, n := utf8.DecodeRuneInString(text[c.Offset:])
		if r != c.From {
			t.Fatalf("%q: change %+v, text has %q there", text, c, r)
		}
		b.WriteString(text[last:c.Offset])
		b.WriteString(c.To)
		last = c.Offset + n
	}
	b.WriteString(text[last:])
	if b.String() != e.Text {
		t.Fatalf("%q: changes give %q, Text is %q", text, b.String(), e.Text)
	}
}

// benchLong is a three-part GSM text.
const benchLong = benchASCII + " " + benchASCII + " " + benchASCII

func BenchmarkCountParts(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CountParts(benchASCII, EncodingGSM)
	}
}

func BenchmarkCountPartsLong(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CountParts(benchLong, EncodingGSM)
	}
}

func BenchmarkSplit(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Split(benchLong, EncodingGSM)
	}
}
