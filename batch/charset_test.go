package batch

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// gsmRepertoire is every character of GSM 03.38, basic table then extension
// table, typed from unicode.org's GSM0338.TXT independently of the tables
// under test.
const (
	gsmBasicChars = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtensionChars = "\f^{}\\[~]|€"
)

func TestGSMLookup(t *testing.T) {
	tests := []struct {
		r      rune
		septet byte
		width  int
	}{
		{'@', 0x00, 1},
		{'£', 0x01, 1},
		{'Ç', 0x09, 1},
		{'\n', 0x0A, 1},
		{'\r', 0x0D, 1},
		{'Δ', 0x10, 1},
		{'Ξ', 0x1A, 1},
		{'É', 0x1F, 1},
		{' ', 0x20, 1},
		{'¤', 0x24, 1},
		{'¡', 0x40, 1},
		{'§', 0x5F, 1},
		{'¿', 0x60, 1},
		{'à', 0x7F, 1},
		{'\f', 0x0A, 2},
		{'^', 0x14, 2},
		{'{', 0x28, 2},
		{'}', 0x29, 2},
		{'\\', 0x2F, 2},
		{'[', 0x3C, 2},
		{'~', 0x3D, 2},
		{']', 0x3E, 2},
		{'|', 0x40, 2},
		{'€', 0x65, 2},
		{'ç', 0, 0},
		{'`', 0, 0},
		{'\t', 0, 0},
		{0x1B, 0, 0},
		{0, 0, 0},
		{'α', 0, 0},
		{'Ж', 0, 0},
		{utf8.RuneError, 0, 0},
		{-1, 0, 0},
	}
	for _, tt := range tests {
		septet, width := gsmLookup(tt.r)
		if septet != tt.septet || width != tt.width {
			t.Errorf("gsmLookup(%U) = %#x, %d; want %#x, %d", tt.r, septet, width, tt.septet, tt.width)
		}
	}
}

// TestGSMRepertoire checks the tables against the independent list above,
// both ways: every listed character has a code, and no other rune does.
func TestGSMRepertoire(t *testing.T) {
	want := map[rune]int{}
	for _, r := range gsmBasicChars {
		want[r] = 1
	}
	for _, r := range gsmExtensionChars {
		want[r] = 2
	}
	if len(want) != 127+10 {
		t.Fatalf("repertoire has %d characters, want 137", len(want))
	}
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if _, w := gsmLookup(r); w != want[r] {
			t.Errorf("gsmLookup(%U) width %d, want %d", r, w, want[r])
		}
	}
	for septet, r := range gsmBasic {
		if septet == gsmEscape {
			continue
		}
		if got, w := gsmLookup(r); got != byte(septet) || w != 1 {
			t.Errorf("basic %#x %q encodes as %#x width %d", septet, r, got, w)
		}
	}
}

func TestEncodeKeepsGSMText(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		units int
	}{
		{"empty", "", 0},
		{"ascii", "Hello, your order #12 ships today.", 34},
		{"basic repertoire", gsmBasicChars, 127},
		{"extension repertoire", gsmExtensionChars, 20},
		{"gsm accented letters kept", "éèùìòàäöñüÄÖÑÜÉÅåØøÆæÇß", 23},
		{"newlines", "a\nb\r\nc", 6},
	}
	for _, tt := range tests {
		for _, cs := range []Charset{CharsetGSM, CharsetAuto, ""} {
			got := Encode(tt.text, cs)
			want := Encoded{Text: tt.text, Encoding: EncodingGSM, Units: tt.units, Parts: 1}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: Encode(%q, %q) = %+v, want %+v", tt.name, tt.text, cs, got, want)
			}
		}
	}
}

// TestTransliterations has one row per look-alike gsm mode must write.
func TestTransliterations(t *testing.T) {
	tests := []struct {
		from rune
		to   string
	}{
		// Appendix A.
		{'Â', "A"}, {'â', "a"}, {'Ê', "E"}, {'ê', "e"}, {'Î', "I"}, {'î', "i"},
		{'Ô', "O"}, {'ô', "o"}, {'Û', "U"}, {'û', "u"}, {'Ë', "E"}, {'ë', "e"},
		{'Ï', "I"}, {'ï', "i"}, {'°', "o"}, {'œ', "oe"}, {'Œ', "OE"}, {'…', "..."},
		// SPEC §3 and the brief.
		{'ç', "c"}, {'`', "'"},
		{'‘', "'"}, {'’', "'"}, {'‚', "'"}, {'‛', "'"}, {'′', "'"},
		{'“', `"`}, {'”', `"`}, {'„', `"`}, {'‟', `"`}, {'″', `"`},
		{'\u2010', "-"}, {'\u2011', "-"}, {'\u2012', "-"}, {'\u2013', "-"},
		{'\u2014', "-"}, {'\u2015', "-"}, {'\u2212', "-"},
		{'\u00A0', " "}, {'\u2000', " "}, {'\u2001', " "}, {'\u2002', " "},
		{'\u2003', " "}, {'\u2004', " "}, {'\u2005', " "}, {'\u2006', " "},
		{'\u2007', " "}, {'\u2008', " "}, {'\u2009', " "}, {'\u200A', " "},
		{'\u202F', " "}, {'\u205F', " "}, {'\u3000', " "},
		// Further listed look-alikes.
		{'\t', " "}, {'´', "'"}, {'ʼ', "'"}, {'‹', "'"}, {'›', "'"},
		{'«', `"`}, {'»', `"`},
		{'Ł', "L"}, {'ł', "l"}, {'Đ', "D"}, {'đ', "d"}, {'ı', "i"},
		{'Α', "A"}, {'Β', "B"}, {'Ε', "E"}, {'Ζ', "Z"}, {'Η', "H"}, {'Ι', "I"},
		{'Κ', "K"}, {'Μ', "M"}, {'Ν', "N"}, {'Ο', "O"}, {'Ρ', "P"}, {'Τ', "T"},
		{'Υ', "Y"}, {'Χ', "X"},
		// Diacritics stripped by decomposition.
		{'á', "a"}, {'í', "i"}, {'ó', "o"}, {'ú', "u"}, {'ã', "a"}, {'õ', "o"},
		{'š', "s"}, {'Š', "S"}, {'ž', "z"}, {'č', "c"}, {'ř', "r"}, {'ő', "o"},
		{'ÿ', "y"}, {'Ÿ', "Y"}, {'Á', "A"}, {'È', "E"}, {'Ś', "S"}, {'ą', "a"},
		{'Ş', "S"}, {'ğ', "g"}, {'ǘ', "ü"}, {'Ḉ', "Ç"}, {'ế', "e"}, {'Ǿ', "Ø"}, {'ǻ', "å"}, {'Ώ', "Ω"},
		{'Ά', "A"},
		// Canonical singletons.
		{'\u2126', "Ω"}, {'\u212B', "Å"}, {'\u212A', "K"}, {'\u037E', ";"},
		// Fullwidth forms.
		{'Ａ', "A"}, {'ｚ', "z"}, {'０', "0"}, {'！', "!"}, {'｛', "{"}, {'｀', "'"},
	}
	for _, tt := range tests {
		text := "x" + string(tt.from) + "y"
		got := Encode(text, CharsetGSM)
		want := Encoded{
			Text:     "x" + tt.to + "y",
			Encoding: EncodingGSM,
			Units:    gsmUnitsForTest(t, "x"+tt.to+"y"),
			Parts:    1,
			Changes:  []Change{{Offset: 1, From: tt.from, To: tt.to}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Encode(%q, gsm) = %+v, want %+v", text, got, want)
		}
		// A look-alike is no removal: auto stays in GSM.
		if auto := Encode(text, CharsetAuto); !reflect.DeepEqual(auto, want) {
			t.Errorf("Encode(%q, auto) = %+v, want %+v", text, auto, want)
		}
	}
}

// gsmUnitsForTest counts septets from the independent repertoire list.
func gsmUnitsForTest(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		switch {
		case strings.ContainsRune(gsmBasicChars, r):
			n++
		case strings.ContainsRune(gsmExtensionChars, r):
			n += 2
		default:
			t.Fatalf("%q is not GSM", r)
		}
	}
	return n
}

// TestTransliterationTable guards the table itself: a key GSM already has
// would be dead, and a value outside GSM would put an unsendable text on air.
func TestTransliterationTable(t *testing.T) {
	for from, to := range transliterations {
		if _, w := gsmLookup(from); w != 0 {
			t.Errorf("%q is GSM; it needs no transliteration", from)
		}
		if to == "" {
			t.Errorf("%q maps to nothing; removals are not listed", from)
		}
		for _, r := range to {
			if _, w := gsmLookup(r); w == 0 {
				t.Errorf("%q maps to %q, which holds non-GSM %q", from, to, r)
			}
		}
	}
}

func TestRemovals(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
		from rune
	}{
		{"cyrillic", "aЖb", "ab", 'Ж'},
		{"emoji", "a😀b", "ab", '😀'},
		{"greek small", "aαb", "ab", 'α'},
		{"not equal is not stripped to equals", "a≠b", "ab", '≠'},
		{"not less than is not stripped", "a≮b", "ab", '≮'},
		{"bullet", "a•b", "ab", '•'},
		{"soft hyphen", "a\u00ADb", "ab", '\u00AD'},
		{"zero width space", "a\u200Bb", "ab", '\u200B'},
		{"lone combining mark", "a\u0301b", "ab", '\u0301'},
		{"nul", "a\x00b", "ab", 0},
		{"escape control", "a\x1bb", "ab", 0x1B},
		{"cjk", "a中b", "ab", '中'},
		{"invalid utf-8", "a\xffb", "ab", utf8.RuneError},
	}
	for _, tt := range tests {
		got := Encode(tt.text, CharsetGSM)
		want := Encoded{
			Text: tt.want, Encoding: EncodingGSM, Units: 2, Parts: 1,
			Changes: []Change{{Offset: 1, From: tt.from, To: ""}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Encode(%q, gsm) = %+v, want %+v", tt.name, tt.text, got, want)
		}
		// One removal is enough for auto to keep the original in UCS-2.
		auto := Encode(tt.text, CharsetAuto)
		if auto.Encoding != EncodingUCS2 || auto.Text != tt.text || auto.Changes != nil {
			t.Errorf("%s: Encode(%q, auto) = %+v, want the original in ucs2", tt.name, tt.text, auto)
		}
	}
}

func TestEncodeMixedChanges(t *testing.T) {
	text := "Crème brûlée à 5€ — “top” Ж!"
	got := Encode(text, CharsetGSM)
	want := Encoded{
		Text:     `Crème brulée à 5€ - "top" !`,
		Encoding: EncodingGSM,
		Units:    28,
		Parts:    1,
		Changes: []Change{
			{Offset: strings.Index(text, "û"), From: 'û', To: "u"},
			{Offset: strings.Index(text, "—"), From: '—', To: "-"},
			{Offset: strings.Index(text, "“"), From: '“', To: `"`},
			{Offset: strings.Index(text, "”"), From: '”', To: `"`},
			{Offset: strings.Index(text, "Ж"), From: 'Ж', To: ""},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Encode(%q, gsm) =\n%+v\nwant\n%+v", text, got, want)
	}
	for _, c := range got.Changes {
		if r, _ := utf8.DecodeRuneInString(text[c.Offset:]); r != c.From {
			t.Errorf("change %+v: text has %q at its offset", c, r)
		}
	}
}

func TestEncodeCharsets(t *testing.T) {
	tests := []struct {
		name string
		text string
		cs   Charset
		want Encoded
	}{
		{"unicode keeps gsm text", "Hello", CharsetUnicode,
			Encoded{Text: "Hello", Encoding: EncodingUCS2, Units: 5, Parts: 1}},
		{"unicode keeps look-alikes", "Crème brûlée", CharsetUnicode,
			Encoded{Text: "Crème brûlée", Encoding: EncodingUCS2, Units: 12, Parts: 1}},
		{"unicode counts utf-16 units", "Привет 😀", CharsetUnicode,
			Encoded{Text: "Привет 😀", Encoding: EncodingUCS2, Units: 9, Parts: 1}},
		{"unicode empty", "", CharsetUnicode,
			Encoded{Text: "", Encoding: EncodingUCS2, Units: 0, Parts: 1}},
		{"auto transliterates", "l’été", CharsetAuto,
			Encoded{Text: "l'été", Encoding: EncodingGSM, Units: 5, Parts: 1,
				Changes: []Change{{Offset: 1, From: '’', To: "'"}}}},
		{"auto with a removal keeps the original", "l’été 😀", CharsetAuto,
			Encoded{Text: "l’été 😀", Encoding: EncodingUCS2, Units: 8, Parts: 1}},
		{"gsm counts escapes twice", "{€}", CharsetGSM,
			Encoded{Text: "{€}", Encoding: EncodingGSM, Units: 6, Parts: 1}},
	}
	for _, tt := range tests {
		if got := Encode(tt.text, tt.cs); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Encode(%q, %q) = %+v, want %+v", tt.name, tt.text, tt.cs, got, tt.want)
		}
	}
}

func TestEncodeUnknownCharsetPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Encode with charset \"latin1\" did not panic")
		}
	}()
	Encode("x", "latin1")
}

func TestDecodeGSM(t *testing.T) {
	basic := make([]byte, 0, 127)
	for s := 0; s < 128; s++ {
		if s != gsmEscape {
			basic = append(basic, byte(s))
		}
	}
	tests := []struct {
		name    string
		septets []byte
		want    string
	}{
		{"empty", nil, ""},
		{"basic table", basic, gsmBasicChars},
		{"extension table", []byte{
			0x1B, 0x0A, 0x1B, 0x14, 0x1B, 0x28, 0x1B, 0x29, 0x1B, 0x2F,
			0x1B, 0x3C, 0x1B, 0x3D, 0x1B, 0x3E, 0x1B, 0x40, 0x1B, 0x65,
		}, gsmExtensionChars},
		{"unassigned extension shows the basic character", []byte{0x1B, 0x41, 0x1B, 0x00}, "A@"},
		{"escape escape shows a space", []byte{'a', 0x1B, 0x1B, 'b'}, "a b"},
		{"trailing escape shows a space", []byte{'a', 0x1B}, "a "},
		{"byte above 0x7f", []byte{'a', 0x80, 0x1B, 0xFF}, "a\uFFFD\uFFFD"},
		{"greek and accents", []byte{0x10, 0x05, 0x7F}, "Δéà"},
	}
	for _, tt := range tests {
		if got := DecodeGSM(tt.septets); got != tt.want {
			t.Errorf("%s: DecodeGSM(% x) = %q, want %q", tt.name, tt.septets, got, tt.want)
		}
	}
}

// TestEncodeAllocations holds the parser's hot path to its budget: a plain
// GSM text comes back as the input string, with nothing allocated.
func TestEncodeAllocations(t *testing.T) {
	tests := []struct {
		text string
		cs   Charset
	}{
		{benchASCII, CharsetGSM},
		{benchASCII, CharsetAuto},
		{benchASCII, CharsetUnicode},
		{"Prix: 5€ {promo} été", CharsetGSM},
		{strings.Repeat("Ж", 200), CharsetUnicode},
		{"Привет " + benchASCII, CharsetAuto},
	}
	for _, tt := range tests {
		var e Encoded
		if n := testing.AllocsPerRun(100, func() { e = Encode(tt.text, tt.cs) }); n != 0 {
			t.Errorf("Encode(%q, %q) allocates %v times, want 0", tt.text, tt.cs, n)
		}
		if e.Text != tt.text {
			t.Errorf("Encode(%q, %q).Text = %q", tt.text, tt.cs, e.Text)
		}
	}
}

const (
	benchASCII = "Hello Mr Smith, your order #4471 is ready for collection at our Leeds store until Friday 6pm. Reply STOP to opt out."
	// benchTranslit is as long, with appendix A's characters in it.
	benchTranslit = "Bonjour M. Dupont, votre commande n°4471 est prête : retrait à l’agence de Besançon jusqu’à vendredi… Répondez STOP."
)

func BenchmarkEncodeASCII(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Encode(benchASCII, CharsetGSM)
	}
}

func BenchmarkEncodeTranslit(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Encode(benchTranslit, CharsetGSM)
	}
}

func BenchmarkEncodeAutoToUnicode(b *testing.B) {
	text := "Здравствуйте, ваш заказ №4471 готов к выдаче в нашем магазине до пятницы 18:00. Ответьте STOP для отписки."
	b.ReportAllocs()
	for b.Loop() {
		Encode(text, CharsetAuto)
	}
}
