package batch

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// fastParse must build exactly what phonenumbers.ParseToNumber builds, or
// fall back to it. Compared on every region's example numbers written in
// all the ways checkNumber hands them over, and on random digit strings.
func TestFastParseMatchesPhonenumbers(t *testing.T) {
	var inputs [][2]string // input, default region
	regions := phonenumbers.GetSupportedRegions()
	for region := range regions {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.MOBILE, phonenumbers.FIXED_LINE, phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE, phonenumbers.VOIP} {
			ex := phonenumbers.GetExampleNumberForType(region, typ)
			if ex == nil {
				continue
			}
			nsn := phonenumbers.GetNationalSignificantNumber(ex)
			cc := strconv.Itoa(int(ex.GetCountryCode()))
			national := phonenumbers.Format(ex, phonenumbers.NATIONAL)
			digits := phonenumbers.NormalizeDigitsOnly(national)
			for _, in := range []string{nsn, cc + nsn, digits, cc + digits, "0" + nsn, cc + "0" + nsn} {
				inputs = append(inputs, [2]string{in, region}, [2]string{"+" + in, "ZZ"}, [2]string{in, "GB"}, [2]string{in, "US"})
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	some := []string{"GB", "FR", "DE", "US", "IT", "AR", "MX", "BR", "IN", "JE", "RU", "CN", "AU", "NZ", "ZA"}
	for range 20000 {
		var b strings.Builder
		for range 2 + rng.IntN(15) {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		r := some[rng.IntN(len(some))]
		inputs = append(inputs, [2]string{b.String(), r}, [2]string{"+" + b.String(), "ZZ"})
	}
	fast := 0
	for _, in := range inputs {
		var want, got phonenumbers.PhoneNumber
		wantErr := phonenumbers.ParseToNumber(in[0], in[1], &want)
		if _, ok := fastNumber(in[0], in[1]); ok {
			fast++
		}
		gotErr := fastParse(in[0], in[1], &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("%s in %s: error %v, phonenumbers %v", in[0], in[1], gotErr, wantErr)
			continue
		}
		if wantErr == nil && (got.GetCountryCode() != want.GetCountryCode() || got.GetNationalNumber() != want.GetNationalNumber() ||
			got.GetItalianLeadingZero() != want.GetItalianLeadingZero() || got.GetNumberOfLeadingZeros() != want.GetNumberOfLeadingZeros()) {
			t.Errorf("%s in %s: got %v, phonenumbers %v", in[0], in[1], &got, &want)
		}
	}
	t.Logf("%d inputs, %d on the fast path", len(inputs), fast)
	if fast < len(inputs)/2 {
		t.Errorf("only %d of %d inputs took the fast path", fast, len(inputs))
	}
}

// fastValid must answer as phonenumbers.IsValidNumberForRegion does: on
// every region's example numbers of every type, and on random national
// numbers, each in its own region, in the other regions of its calling
// code and in a few unrelated ones.
func TestFastValidMatchesPhonenumbers(t *testing.T) {
	var nums []*phonenumbers.PhoneNumber
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.MOBILE, phonenumbers.FIXED_LINE, phonenumbers.TOLL_FREE,
			phonenumbers.PREMIUM_RATE, phonenumbers.VOIP, phonenumbers.SHARED_COST, phonenumbers.PERSONAL_NUMBER,
			phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL} {
			if ex := phonenumbers.GetExampleNumberForType(region, typ); ex != nil {
				nums = append(nums, ex)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ccs := []int{1, 7, 33, 39, 44, 49, 52, 54, 55, 61, 64, 86, 91, 225, 262, 590, 800, 882}
	for range 30000 {
		var b strings.Builder
		for range 4 + rng.IntN(11) {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		var pn phonenumbers.PhoneNumber
		if err := phonenumbers.ParseToNumber("+"+strconv.Itoa(ccs[rng.IntN(len(ccs))])+b.String(), "ZZ", &pn); err == nil {
			nums = append(nums, &pn)
		}
	}
	others := []string{"GB", "FR", "US", "JE", "IT", "DE", "001", "ZZ"}
	checked, valid := 0, 0
	for _, pn := range nums {
		regions := append(phonenumbers.GetRegionCodesForCountryCode(int(pn.GetCountryCode())), others...)
		for _, r := range regions {
			want := phonenumbers.IsValidNumberForRegion(pn, r)
			if got := fastValid(pn, r); got != want {
				t.Errorf("%v in %s: fastValid %v, phonenumbers %v", pn, r, got, want)
			}
			checked++
			if want {
				valid++
			}
		}
	}
	t.Logf("%d numbers, %d checks, %d valid", len(nums), checked, valid)
}
