package batch

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Change is one character that gsm mode replaced or removed.
type Change struct {
	Offset int    // byte offset of the character in the input text
	From   rune   // the original character
	To     string // its replacement; "" when removed
}

// Encoded is a text after the account's charset policy.
type Encoded struct {
	Text     string   // what goes on the air (transliterated for gsm; original for unicode)
	Encoding Encoding // EncodingGSM or EncodingUCS2
	Units    int      // septets (escape pairs count 2) or UTF-16 code units
	Parts    int      // number of SMS parts (SPEC §3)
	Changes  []Change // gsm only: every replacement/removal, in text order
}

// gsmEscape is the septet that announces a character of the extension table.
const gsmEscape = 0x1B

// gsmBasic is the GSM 03.38 default alphabet indexed by septet, as in
// unicode.org's GSM0338.TXT (0x09 is Ç, not ç). The escape 0x1B has no
// character of its own.
var gsmBasic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', 0, 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmExtension is the GSM 03.38 extension table: the character of the septet
// that follows an escape, 0 where none is assigned.
var gsmExtension = [128]rune{
	0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\',
	0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€',
}

// gsmCode is a rune's place in GSM 03.38: the septet in the low byte, plus
// flags, so that the zero value means "no GSM code" even for '@' (septet 0).
type gsmCode uint16

const (
	gsmPresent   gsmCode = 1 << 8 // the rune has a GSM code
	gsmExtended  gsmCode = 1 << 9 // it is sent as escape + septet
	gsmEuroRune          = '€'    // the only GSM character above U+03FF
	gsmEuroCode          = gsmPresent | gsmExtended | 0x65
	gsmTableSize         = 0x400 // covers Latin-1 and the Greek capitals
)

// gsmCodes maps runes below U+0400 to their GSM code; it is derived from the
// two tables above so that they stay the single source of truth.
var gsmCodes = buildGSMCodes()

func buildGSMCodes() [gsmTableSize]gsmCode {
	var t [gsmTableSize]gsmCode
	for septet, r := range gsmBasic {
		if septet != gsmEscape {
			t[r] = gsmPresent | gsmCode(septet)
		}
	}
	for septet, r := range gsmExtension {
		if r != 0 && r < gsmTableSize {
			t[r] = gsmPresent | gsmExtended | gsmCode(septet)
		}
	}
	return t
}

// gsmCodeOf returns r's GSM code, zero when GSM lacks r.
func gsmCodeOf(r rune) gsmCode {
	if uint32(r) < gsmTableSize {
		return gsmCodes[r]
	}
	if r == gsmEuroRune {
		return gsmEuroCode
	}
	return 0
}

// width is the code's size in septets: 1 for the basic table, 2 for the
// extension table, 0 when there is no code.
func (c gsmCode) width() int {
	return int(c>>8&1) + int(c>>9&1)
}

// gsmLookup returns r's septet and its width in septets: 1 for the basic
// table, 2 for the extension table, 0 when GSM cannot represent r.
func gsmLookup(r rune) (septet byte, width int) {
	c := gsmCodeOf(r)
	return byte(c), c.width()
}

// gsmScan counts the septets of text up to the first character GSM lacks.
// It returns that count, the byte offset of that character (len(text) when
// there is none) and whether an escape pair occurred.
func gsmScan(text string) (units, end int, escapes bool) {
	chars, ext := 0, 0
	for i := 0; i < len(text); {
		var c gsmCode
		size := 1
		if b := text[i]; b < utf8.RuneSelf {
			c = gsmCodes[b]
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(text[i:])
			c = gsmCodeOf(r)
		}
		if c&gsmPresent == 0 {
			return chars + ext, i, ext > 0
		}
		chars++
		ext += int(c >> 9 & 1)
		i += size
	}
	return chars + ext, len(text), ext > 0
}

// ucs2Count counts the UTF-16 code units of text and reports whether any
// character needs a surrogate pair.
func ucs2Count(text string) (units int, pairs bool) {
	for _, r := range text {
		units++
		if r >= 0x10000 {
			units++
			pairs = true
		}
	}
	return units, pairs
}

// transliterations are the look-alikes gsm mode writes for characters GSM
// lacks: appendix A's list, SPEC §3's quotes, dashes and spaces, and other
// replacements that keep the text's meaning. Every value is made of GSM
// characters only (a test checks it).
var transliterations = map[rune]string{
	// Appendix A.
	'Â': "A", 'â': "a", 'Ê': "E", 'ê': "e", 'Î': "I", 'î': "i", 'Ô': "O", 'ô': "o",
	'Û': "U", 'û': "u", 'Ë': "E", 'ë': "e", 'Ï': "I", 'ï': "i", '°': "o",
	'œ': "oe", 'Œ': "OE", '…': "...",
	// GSM has Ç but no ç.
	'ç': "c",
	// Quotes and apostrophes. The appendix deletes ’ and `, but SPEC §3 wins:
	// an apostrophe is worth keeping.
	'‘': "'", '’': "'", '‚': "'", '‛': "'", '′': "'", '`': "'", '´': "'", 'ʼ': "'",
	'‹': "'", '›': "'",
	'“': `"`, '”': `"`, '„': `"`, '‟': `"`, '″': `"`, '«': `"`, '»': `"`,
	// Dashes and the minus sign.
	'\u2010': "-", '\u2011': "-", '\u2012': "-", '\u2013': "-", '\u2014': "-",
	'\u2015': "-", '\u2212': "-",
	// Spaces: tab, no-break and the typographic spaces.
	'\t': " ", '\u00A0': " ", '\u2000': " ", '\u2001': " ", '\u2002': " ",
	'\u2003': " ", '\u2004': " ", '\u2005': " ", '\u2006': " ", '\u2007': " ",
	'\u2008': " ", '\u2009': " ", '\u200A': " ", '\u202F': " ", '\u205F': " ",
	'\u3000': " ",
	// Letters with a stroke or without a dot, which have no canonical
	// decomposition to strip.
	'Ł': "L", 'ł': "l", 'Đ': "D", 'đ': "d", 'ı': "i",
	// Greek capitals drawn like Latin ones; GSM carries only the others, so
	// with these an upper-case Greek text stays in GSM as 03.38 intends.
	'Α': "A", 'Β': "B", 'Ε': "E", 'Ζ': "Z", 'Η': "H", 'Ι': "I", 'Κ': "K",
	'Μ': "M", 'Ν': "N", 'Ο': "O", 'Ρ': "P", 'Τ': "T", 'Υ': "Y", 'Χ': "X",
}

// Fullwidth forms U+FF01..U+FF5E are ASCII '!'..'~' shifted by this offset.
const (
	fullwidthFirst  = '\uFF01'
	fullwidthLast   = '\uFF5E'
	fullwidthOffset = 0xFEE0
)

// direct returns r itself when GSM has it, else its listed transliteration.
func direct(r rune) (string, bool) {
	if _, w := gsmLookup(r); w > 0 {
		return string(r), true
	}
	s, ok := transliterations[r]
	return s, ok
}

// lookalike returns what gsm mode writes instead of r, which GSM lacks, or
// false when r is to be removed.
func lookalike(r rune) (string, bool) {
	if s, ok := transliterations[r]; ok {
		return s, true
	}
	if r >= fullwidthFirst && r <= fullwidthLast {
		return direct(r - fullwidthOffset)
	}
	// Without a canonical decomposition nothing below applies; checking
	// first spares texts in other scripts the allocations of normalising.
	var enc [utf8.UTFMax]byte
	if norm.NFD.Properties(utf8.AppendRune(enc[:0], r)).Decomposition() == nil {
		return "", false
	}
	// A canonical singleton (Ω ohm sign, Å angstrom sign, K kelvin sign) is
	// by definition the same character as its normal form.
	if nfc := norm.NFC.String(string(r)); nfc != string(r) {
		if c, n := utf8.DecodeRuneInString(nfc); n == len(nfc) {
			if s, ok := direct(c); ok {
				return s, true
			}
		}
	}
	// A letter with diacritics loses them, last first, until it is a
	// letter GSM has (ǘ → ü, ǻ → å, á → a, Ώ → Ω). Only letters: ≠
	// decomposes to = plus a mark, and stripping that would invert the
	// meaning.
	d := []rune(norm.NFD.String(string(r)))
	if len(d) < 2 || !unicode.IsLetter(d[0]) {
		return "", false
	}
	for _, m := range d[1:] {
		if !unicode.Is(unicode.Mn, m) {
			return "", false
		}
	}
	for keep := len(d) - 1; keep >= 1; keep-- {
		c := norm.NFC.String(string(d[:keep]))
		if cr, n := utf8.DecodeRuneInString(c); n == len(c) {
			if s, ok := direct(cr); ok {
				return s, true
			}
		}
	}
	return "", false
}

// The segment limits of SPEC §3, in septets or UTF-16 code units.
const (
	gsmSingle  = 160
	gsmMulti   = 153
	ucs2Single = 70
	ucs2Multi  = 67
)

// partCounter replays the greedy split: it moves a character that would
// overflow a part whole to the next one.
type partCounter struct {
	multi int // units one part of a concatenated SMS holds
	parts int
	fill  int // units in the current part
}

// add counts one character of w units and reports whether it starts a new
// part.
func (c *partCounter) add(w int) bool {
	if c.fill+w > c.multi {
		c.parts++
		c.fill = w
		return true
	}
	c.fill += w
	return false
}

// partsOf returns the parts of text, which holds units in total. Only when
// characters differ in width (uneven: escape or surrogate pairs) must the
// text be walked again, since only then can a part end short of its limit.
func partsOf(text string, gsm bool, units int, uneven bool) int {
	single, multi := ucs2Single, ucs2Multi
	if gsm {
		single, multi = gsmSingle, gsmMulti
	}
	switch {
	case units <= single:
		return 1
	case !uneven:
		return (units + multi - 1) / multi
	}
	c := partCounter{multi: multi, parts: 1}
	for _, r := range text {
		c.add(unitWidth(r, gsm))
	}
	return c.parts
}

// Encode applies charset cs (gsm, unicode, auto) to text. An empty cs is
// gsm, the SPEC's default; any other value is a programming error and panics.
func Encode(text string, cs Charset) Encoded {
	switch cs {
	case CharsetGSM, "":
		e, _ := encodeGSM(text, false)
		return e
	case CharsetAuto:
		if e, ok := encodeGSM(text, true); ok {
			return e
		}
		return encodeUCS2(text)
	case CharsetUnicode:
		return encodeUCS2(text)
	}
	panic(fmt.Sprintf("batch: unknown charset %q", cs))
}

// encodeGSM writes text in GSM with look-alikes. With stopOnRemoval it gives
// up (false) at the first character it would remove, so that auto mode pays
// little for texts that go out in UCS-2.
func encodeGSM(text string, stopOnRemoval bool) (Encoded, bool) {
	// Most texts are plain GSM: count them in one pass and return them as
	// they are, without allocating.
	units, end, escapes := gsmScan(text)
	var changes []Change
	if end < len(text) {
		var ok bool
		if text, changes, ok = transliterate(text, end, stopOnRemoval); !ok {
			return Encoded{}, false
		}
		units, _, escapes = gsmScan(text)
	}
	return Encoded{
		Text:     text,
		Encoding: EncodingGSM,
		Units:    units,
		Parts:    partsOf(text, true, units, escapes),
		Changes:  changes,
	}, true
}

// transliterate rewrites text from byte offset start, the first character
// GSM lacks, with look-alikes and removals. With stopOnRemoval it fails at
// the first removal.
func transliterate(text string, start int, stopOnRemoval bool) (string, []Change, bool) {
	var b strings.Builder
	var changes []Change
	for i := start; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		to, ok := lookalike(r)
		if !ok && stopOnRemoval {
			return "", nil, false
		}
		if changes == nil {
			// Only now, so that auto mode allocates nothing for a text
			// whose first non-GSM character sends it to UCS-2.
			b.Grow(len(text))
			b.WriteString(text[:start])
		}
		changes = append(changes, Change{Offset: i, From: r, To: to})
		b.WriteString(to)
		i += size
		// Copy the run of GSM characters up to the next change whole.
		_, end, _ := gsmScan(text[i:])
		b.WriteString(text[i : i+end])
		i += end
	}
	return b.String(), changes, true
}

// encodeUCS2 keeps text and counts its UTF-16 code units.
func encodeUCS2(text string) Encoded {
	units, pairs := ucs2Count(text)
	return Encoded{Text: text, Encoding: EncodingUCS2, Units: units, Parts: partsOf(text, false, units, pairs)}
}

// utf16Width is the number of UTF-16 code units of r.
func utf16Width(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// DecodeGSM turns unpacked septets back into text (used by the SMPP driver for
// incoming messages and by tests). As 3GPP TS 23.038 asks of a receiver, an
// escape before an unassigned code shows that code's basic character, and an
// escape before another escape (reserved for a further table) or at the very
// end shows a space. A byte above 0x7F is not a septet and becomes U+FFFD.
func DecodeGSM(septets []byte) string {
	var b strings.Builder
	b.Grow(len(septets))
	for i := 0; i < len(septets); i++ {
		s := septets[i]
		switch {
		case s > 0x7F:
			b.WriteRune(utf8.RuneError)
		case s != gsmEscape:
			b.WriteRune(gsmBasic[s])
		case i+1 == len(septets):
			b.WriteByte(' ')
		default:
			i++
			x := septets[i]
			switch {
			case x > 0x7F:
				b.WriteRune(utf8.RuneError)
			case x == gsmEscape:
				b.WriteByte(' ')
			case gsmExtension[x] != 0:
				b.WriteRune(gsmExtension[x])
			default:
				b.WriteRune(gsmBasic[x])
			}
		}
	}
	return b.String()
}
