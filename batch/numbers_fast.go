package batch

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// phonenumbers.Parse spends most of its time on things a cleaned number
// cannot have: half of it goes to the extension regex, run on a string
// that is only digits by then. fastParse builds the same PhoneNumber for the
// digits-only inputs checkNumber hands over, following phonenumbers'
// parseHelper step by step with the library's own metadata, and falls back
// to phonenumbers.ParseToNumber for every case it does not mirror (an
// international dialling prefix, a national prefix transform rule, a
// country code starting with 0). TestFastParseMatchesPhonenumbers compares
// the two on every region's example numbers and on random digit strings.

// fastMeta is what fastParse needs of one region's metadata.
type fastMeta struct {
	cc        int
	ccStr     string
	idd       *regexp.Regexp // international dialling prefix, anchored; nil if none
	npp       *regexp.Regexp // national prefix for parsing, anchored; nil if none
	transform bool           // npp has a transform rule: not mirrored
	general   *regexp.Regexp // general desc national number pattern, whole string
	lengths   []int32        // general desc possible lengths
	local     []int32        // general desc local-only lengths
}

type fastTables struct {
	byRegion map[string]*fastMeta
	byCC     map[int]*fastMeta // the metadata parseHelper uses for a calling code
}

var loadFastTables = sync.OnceValue(buildFastTables)

func buildFastTables() *fastTables {
	t := &fastTables{byRegion: map[string]*fastMeta{}, byCC: map[int]*fastMeta{}}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return t // empty: every number takes the library's path
	}
	nonGeo := map[int]*fastMeta{}
	for _, m := range coll.GetMetadata() {
		fm := &fastMeta{cc: int(m.GetCountryCode()), ccStr: strconv.Itoa(int(m.GetCountryCode()))}
		if p := m.GetInternationalPrefix(); p != "" {
			fm.idd = regexp.MustCompile("^(?:" + p + ")")
		}
		if p := m.GetNationalPrefixForParsing(); p != "" {
			fm.npp = regexp.MustCompile("^(?:" + p + ")")
		}
		fm.transform = m.GetNationalPrefixTransformRule() != ""
		gd := m.GetGeneralDesc()
		fm.general = regexp.MustCompile("^(?:" + gd.GetNationalNumberPattern() + ")$")
		fm.lengths = gd.GetPossibleLength()
		fm.local = gd.GetPossibleLengthLocalOnly()
		if m.GetId() == "001" {
			nonGeo[fm.cc] = fm
			continue
		}
		t.byRegion[m.GetId()] = fm
	}
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		region := phonenumbers.GetRegionCodeForCountryCode(cc)
		if region == "001" {
			if fm := nonGeo[cc]; fm != nil {
				t.byCC[cc] = fm
			}
		} else if fm := t.byRegion[region]; fm != nil {
			t.byCC[cc] = fm
		}
	}
	return t
}

// lengthResult mirrors phonenumbers' testNumberLength for the general desc.
func (m *fastMeta) lengthResult(n string) phonenumbers.ValidationResult {
	if len(m.lengths) == 0 || m.lengths[0] == -1 {
		return phonenumbers.INVALID_LENGTH
	}
	l := int32(len(n))
	for _, x := range m.local {
		if x == l {
			return phonenumbers.IS_POSSIBLE_LOCAL_ONLY
		}
	}
	switch {
	case m.lengths[0] == l:
		return phonenumbers.IS_POSSIBLE
	case m.lengths[0] > l:
		return phonenumbers.TOO_SHORT
	case m.lengths[len(m.lengths)-1] < l:
		return phonenumbers.TOO_LONG
	}
	for _, x := range m.lengths[1:] {
		if x == l {
			return phonenumbers.IS_POSSIBLE
		}
	}
	return phonenumbers.INVALID_LENGTH
}

// stripNationalPrefix mirrors maybeStripNationalPrefixAndCarrierCode without
// a transform rule; ok is false when the library would transform.
func (m *fastMeta) stripNationalPrefix(n string) (out string, ok bool) {
	if m.npp == nil || n == "" {
		return n, true
	}
	g := m.npp.FindStringSubmatchIndex(n)
	if g == nil {
		return n, true
	}
	groups := len(g)/2 - 1
	if m.transform && g[groups*2] >= 0 {
		return "", false
	}
	if m.general.MatchString(n) && !m.general.MatchString(n[g[1]:]) {
		return n, true
	}
	return n[g[1]:], true
}

// fastParse fills pn as phonenumbers.ParseToNumber(s, region, pn) would,
// for s made of digits with an optional leading '+'.
func fastParse(s, region string, pn *phonenumbers.PhoneNumber) error {
	if n, ok := fastNumber(s, region); ok {
		pn.CountryCode = proto.Int32(int32(n.cc))
		pn.NationalNumber = proto.Uint64(n.nsn)
		if n.zeros > 0 {
			pn.ItalianLeadingZero = proto.Bool(true)
			if n.zeros != 1 {
				pn.NumberOfLeadingZeros = proto.Int32(int32(n.zeros))
			}
		}
		return nil
	}
	return phonenumbers.ParseToNumber(s, region, pn)
}

type fastResult struct {
	cc    int
	nsn   uint64
	zeros int // Italian leading zeros, 0 when none
}

func fastNumber(s, region string) (fastResult, bool) {
	t := loadFastTables()
	var (
		meta *fastMeta
		nsn  string
		cc   int
	)
	if rest, intl := strings.CutPrefix(s, "+"); intl {
		// "+digits": the country code is the first 1 to 3 digits that are
		// a calling code.
		if len(rest) <= 2 || rest[0] == '0' {
			return fastResult{}, false
		}
		for i := 1; i <= 3 && i <= len(rest); i++ {
			c, _ := strconv.Atoi(rest[:i])
			if m := t.byCC[c]; m != nil {
				cc, meta, nsn = c, m, rest[i:]
				break
			}
		}
		if meta == nil {
			return fastResult{}, false
		}
	} else {
		def := t.byRegion[region]
		if def == nil || (def.idd != nil && def.idd.MatchString(s)) {
			return fastResult{}, false
		}
		cc, meta, nsn = def.cc, def, s
		if rest, ok := strings.CutPrefix(s, def.ccStr); ok {
			// The number may start with the region's own calling code.
			potential, ok := def.stripNationalPrefix(rest)
			if !ok {
				return fastResult{}, false
			}
			if (!def.general.MatchString(s) && def.general.MatchString(potential)) || def.lengthResult(s) == phonenumbers.TOO_LONG {
				nsn = potential
				if phonenumbers.GetRegionCodeForCountryCode(cc) != region {
					// parseHelper switches to the calling code's main region.
					if meta = t.byCC[cc]; meta == nil {
						return fastResult{}, false
					}
				}
			}
		}
	}
	if len(nsn) < 2 {
		return fastResult{}, false
	}
	stripped, ok := meta.stripNationalPrefix(nsn)
	if !ok {
		return fastResult{}, false
	}
	switch meta.lengthResult(stripped) {
	case phonenumbers.TOO_SHORT, phonenumbers.IS_POSSIBLE_LOCAL_ONLY, phonenumbers.INVALID_LENGTH:
	default:
		nsn = stripped
	}
	if len(nsn) < 2 || len(nsn) > 17 {
		return fastResult{}, false
	}
	v, err := strconv.ParseUint(nsn, 10, 64)
	if err != nil {
		return fastResult{}, false
	}
	r := fastResult{cc: cc, nsn: v}
	if len(nsn) >= 2 && nsn[0] == '0' {
		r.zeros = 1
		for r.zeros < len(nsn)-1 && nsn[r.zeros] == '0' {
			r.zeros++
		}
	}
	return r, true
}

// phonenumbers.IsValidNumberForRegion takes most of a big file's number
// checks: it matches the national number against each number type of the
// region in turn (premium rate first, mobile last), every desc twice, each
// time building the pattern string and looking the compiled regex up in a
// cache behind a lock. fastValid gives the same answer from patterns
// compiled once, trying mobile first. TestFastValidMatchesPhonenumbers
// compares the two.

// descMatch is one number type's possible lengths and pattern.
type descMatch struct {
	lengths []int32
	re      *regexp.Regexp
}

func newDescMatch(d *phonenumbers.PhoneNumberDesc) *descMatch {
	if d == nil || d.GetNationalNumberPattern() == "" {
		return nil // matches no number but the empty one
	}
	return &descMatch{lengths: d.GetPossibleLength(), re: regexp.MustCompile("^(?:" + d.GetNationalNumberPattern() + ")$")}
}

// match is phonenumbers' isNumberMatchingDesc.
func (m *descMatch) match(nsn string) bool {
	if m == nil {
		return false
	}
	if len(m.lengths) > 0 {
		l, found := int32(len(nsn)), false
		for _, x := range m.lengths {
			if x == l {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return m.re.MatchString(nsn)
}

// validMeta is a region's calling code, general desc and number types.
type validMeta struct {
	cc      int32
	general *descMatch
	types   []*descMatch // mobile first; nil entries never match
}

var loadValidTables = sync.OnceValue(func() map[string]*validMeta {
	t := map[string]*validMeta{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return t // empty: every number takes the library's path
	}
	for _, m := range coll.GetMetadata() {
		if m.GetId() == "001" {
			continue // non-geographic: the library's path
		}
		vm := &validMeta{cc: m.GetCountryCode(), general: newDescMatch(m.GetGeneralDesc())}
		// getNumberTypeHelper returns a type, so other than UNKNOWN, when
		// any of these matches; it tries mobile only when its pattern is
		// not the fixed line's (then a fixed line match covers it).
		if !m.GetSameMobileAndFixedLinePattern() {
			vm.types = append(vm.types, newDescMatch(m.GetMobile()))
		}
		vm.types = append(vm.types, newDescMatch(m.GetFixedLine()), newDescMatch(m.GetPremiumRate()),
			newDescMatch(m.GetTollFree()), newDescMatch(m.GetSharedCost()), newDescMatch(m.GetVoip()),
			newDescMatch(m.GetPersonalNumber()), newDescMatch(m.GetPager()), newDescMatch(m.GetUan()),
			newDescMatch(m.GetVoicemail()))
		t[m.GetId()] = vm
	}
	return t
})

// fastValid reports what phonenumbers.IsValidNumberForRegion(pn, region)
// reports.
func fastValid(pn *phonenumbers.PhoneNumber, region string) bool {
	vm := loadValidTables()[region]
	if vm == nil {
		return phonenumbers.IsValidNumberForRegion(pn, region)
	}
	if pn.GetCountryCode() != vm.cc {
		return false
	}
	nsn := phonenumbers.GetNationalSignificantNumber(pn)
	if !vm.general.match(nsn) {
		return false
	}
	for _, d := range vm.types {
		if d.match(nsn) {
			return true
		}
	}
	return false
}
