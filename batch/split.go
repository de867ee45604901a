package batch

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// gsmUnknown is the septet ('?') Split and CountParts use for a character GSM
// lacks. Encode never leaves one in a gsm text; this only keeps the two
// functions total and in agreement for any input.
const gsmUnknown = 0x3F

// unitWidth is r's size in enc's units: septets for GSM (an unknown
// character counts as its '?'), UTF-16 code units otherwise.
func unitWidth(r rune, gsm bool) int {
	if !gsm {
		return utf16Width(r)
	}
	if w := gsmCodeOf(r).width(); w > 0 {
		return w
	}
	return 1
}

// isGSM tells the two encodings apart; any other value is a programming
// error and panics.
func isGSM(enc Encoding) bool {
	switch enc {
	case EncodingGSM:
		return true
	case EncodingUCS2:
		return false
	}
	panic(fmt.Sprintf("batch: unknown encoding %q", enc))
}

// count returns the units of text in enc and whether its characters differ
// in width.
func count(text string, gsm bool) (units int, uneven bool) {
	if !gsm {
		return ucs2Count(text)
	}
	for {
		u, end, e := gsmScan(text)
		units += u
		uneven = uneven || e
		if end == len(text) {
			return units, uneven
		}
		_, size := utf8.DecodeRuneInString(text[end:])
		units++ // its '?'
		text = text[end+size:]
	}
}

// CountParts returns how many SMS parts text needs in enc (text must already
// be representable in enc). It must not allocate.
func CountParts(text string, enc Encoding) int {
	gsm := isGSM(enc)
	units, uneven := count(text, gsm)
	return partsOf(text, gsm, units, uneven)
}

// Split returns the payload of each part, in order: for GSM the unpacked
// septet values, one byte each (an extension character is the two bytes
// 0x1B, code), for UCS-2 the UTF-16BE bytes. A single-part text gives one
// payload.
//
// The payloads share one backing array but are capped, so appending to one
// never overwrites the next.
func Split(text string, enc Encoding) [][]byte {
	gsm := isGSM(enc)
	units, uneven := count(text, gsm)
	n := partsOf(text, gsm, units, uneven)
	size, multi := 2*units, ucs2Multi
	if gsm {
		size, multi = units, gsmMulti
	}
	buf := make([]byte, 0, size)
	parts := make([][]byte, 0, n)
	// The cuts replay partsOf's greedy count, so they are exactly those
	// CountParts assumed.
	c := partCounter{multi: multi, parts: 1}
	start := 0
	for _, r := range text {
		if c.add(unitWidth(r, gsm)) && n > 1 {
			parts = append(parts, buf[start:len(buf):len(buf)])
			start = len(buf)
		}
		buf = appendUnits(buf, r, gsm)
	}
	return append(parts, buf[start:len(buf):len(buf)])
}

// appendUnits appends r's septets or UTF-16BE code units to buf.
func appendUnits(buf []byte, r rune, gsm bool) []byte {
	if gsm {
		c := gsmCodeOf(r)
		switch c.width() {
		case 0:
			return append(buf, gsmUnknown)
		case 2:
			return append(buf, gsmEscape, byte(c))
		default:
			return append(buf, byte(c))
		}
	}
	if r >= 0x10000 {
		hi, lo := utf16.EncodeRune(r)
		buf = binary.BigEndian.AppendUint16(buf, uint16(hi))
		return binary.BigEndian.AppendUint16(buf, uint16(lo))
	}
	return binary.BigEndian.AppendUint16(buf, uint16(r))
}

// UDH returns the 6-byte 8-bit concatenation user data header 05 00 03 ref
// total seq (seq 1-based). The header holds total and seq in one byte each,
// so total must be 1..255 and seq 1..total; anything else is a programming
// error (max_segments is the caller's bound) and panics.
func UDH(ref byte, total, seq int) []byte {
	if total < 1 || total > 255 || seq < 1 || seq > total {
		panic(fmt.Sprintf("batch: UDH part %d of %d out of range", seq, total))
	}
	return []byte{0x05, 0x00, 0x03, ref, byte(total), byte(seq)}
}
