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
