package batch

import (
	"strconv"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// maxNumberDigits bounds what is handed to phonenumbers: E.164 allows 15
// digits; a little slack keeps national trunk prefixes, and anything longer
// is rejected without the cost of a parse.
const maxNumberDigits = 17

// isNumberSeparator reports whether c is a separator SPEC §4 ignores in a
// number: spaces, dots, dashes and brackets, typographic ones included (the
// no-break and narrow spaces spreadsheets group digits with, en dashes),
// as in message text (see translit).
func isNumberSeparator(c rune) bool {
	switch c {
	case '\t', '.', '(', ')', '[', ']', '\u2212':
		return true
	}
	return unicode.Is(unicode.Zs, c) || unicode.Is(unicode.Pd, c)
}

// cleanNumber removes the separators SPEC §4 ignores (spaces, dots, dashes,
// brackets) and the international prefix. It returns the digits, whether the
// number was written in international form (+ or 00), and false when
// anything but digits remains: letters are not dialled here even though
// phonenumbers would accept vanity numbers.
func cleanNumber(s string) (digits string, intl bool, ok bool) {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			clean = false
			break
		}
	}
	if !clean {
		b := make([]byte, 0, len(s))
		for _, c := range s {
			switch {
			case c >= '0' && c <= '9':
				b = append(b, byte(c))
			case c == '+' && len(b) == 0 && !intl:
				intl = true
			case isNumberSeparator(c):
			default:
				return "", false, false
			}
		}
		s = string(b)
	}
	if !intl && len(s) > 2 && s[0] == '0' && s[1] == '0' {
		s, intl = s[2:], true
	}
	if len(s) < 2 || len(s) > maxNumberDigits {
		return "", false, false
	}
	return s, intl, true
}

// E164 writes number in E.164, reading it as SPEC §4 reads a recipient
// (+ or 00 international, else national in country when valid there, else
// international); ok is false when it is no valid number. It puts a reply's
// sender, which an SMSC may give in national form, in the form recipients
// are stored in.
func E164(number, country string) (string, bool) {
	nc := checkNumber(number, country, true, nil)
	return nc.number, nc.code == ""
}

// numberCheck is the outcome of validating one distinct input number.
type numberCheck struct {
	number string // E.164, empty when invalid
	code   string // INVALID_NUMBER, COUNTRY_NOT_ALLOWED, OPTED_OUT or ""
}

// checkNumber validates one number as written (SPEC §4): international when
// written with + or 00; otherwise national in country when valid there, else
// international as if a + had been written, which is how the seed writes
// numbers (#-447123456789).
//
// A number is "in the country" when phonenumbers places it in that region:
// for GB, Jersey, Guernsey and Isle of Man numbers share +44 but are other
// regions and so need the international option, as they do with most
// providers' price lists.
func checkNumber(input, country string, international bool, optedOut func(string) bool) numberCheck {
	digits, intl, ok := cleanNumber(input)
	if !ok {
		return numberCheck{code: CodeInvalidNumber}
	}
	var pn phonenumbers.PhoneNumber
	region := ""
	if !intl {
		region = validRegion(digits, country, country, &pn)
	}
	if region == "" {
		region = validRegion("+"+digits, "ZZ", country, &pn)
	}
	if region == "" {
		return numberCheck{code: CodeInvalidNumber}
	}
	e164 := "+" + strconv.Itoa(int(pn.GetCountryCode())) + phonenumbers.GetNationalSignificantNumber(&pn)
	switch {
	case !international && region != country:
		return numberCheck{number: e164, code: CodeCountryNotAllowed}
	case optedOut != nil && optedOut(e164):
		return numberCheck{number: e164, code: CodeOptedOut}
	}
	return numberCheck{number: e164}
}

// validRegion parses s into pn and returns the region the number is valid
// in, or "" when it is not a valid number. It is phonenumbers.IsValidNumber
// keeping the region it finds, so the country check costs nothing more,
// and trying the account's country first: IsValidNumber on a +44 number
// matches it against the GB patterns twice (once to find the region among
// GB, GG, IM and JE, once to validate), this matches most numbers once.
func validRegion(s, defaultRegion, country string, pn *phonenumbers.PhoneNumber) string {
	pn.Reset()
	if err := fastParse(s, defaultRegion, pn); err != nil {
		return ""
	}
	if fastValid(pn, country) {
		return country
	}
	region := phonenumbers.GetRegionCodeForNumber(pn)
	if region == "" || region == country || !fastValid(pn, region) {
		return ""
	}
	return region
}
