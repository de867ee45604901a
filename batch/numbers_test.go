package batch

import "testing"

// TestCheckNumber covers SPEC §4: separators, the three ways of writing an
// international number, the national fallback, and the codes.
func TestCheckNumber(t *testing.T) {
	optedOut := func(n string) bool { return n == "+447400999999" }
	tests := []struct {
		input         string
		country       string
		international bool
		number        string
		code          string
	}{
		{"07400123456", "GB", false, "+447400123456", ""},
		{"07400 123 456", "GB", false, "+447400123456", ""},
		{"07400.123.456", "GB", false, "+447400123456", ""},
		{"(07400) 123-456", "GB", false, "+447400123456", ""},
		{"[07400]\t123456", "GB", false, "+447400123456", ""},
		// Typographic separators, as spreadsheets and word processors write them.
		{"07400\u00a0123\u00a0456", "GB", false, "+447400123456", ""},
		{"07400\u202f123\u202f456", "GB", false, "+447400123456", ""},
		{"07400\u2013123\u2010456", "GB", false, "+447400123456", ""},
		{"+44\u2009(0)7400\u2212123456", "GB", false, "+447400123456", ""},
		{"07400\u00b7123456", "GB", false, "", CodeInvalidNumber}, // a middle dot is no separator
		{"+447400123456", "GB", false, "+447400123456", ""},
		{"+44 (0)7400 123456", "GB", false, "+447400123456", ""},
		{"00447400123456", "GB", false, "+447400123456", ""},
		{"447400123456", "GB", false, "+447400123456", ""},
		{"447123456789", "GB", false, "+447123456789", ""},
		{"07400123456", "FR", true, "", CodeInvalidNumber},
		{"447400123456", "FR", false, "+447400123456", CodeCountryNotAllowed},
		{"447400123456", "FR", true, "+447400123456", ""},
		{"0612345678", "FR", false, "+33612345678", ""},
		{"33612345678", "GB", true, "+33612345678", ""},
		{"+33 6 12 34 56 78", "GB", false, "+33612345678", CodeCountryNotAllowed},
		{"0033612345678", "GB", true, "+33612345678", ""},
		{"07911123456", "GB", false, "+447911123456", CodeCountryNotAllowed}, // Guernsey
		{"07911123456", "GB", true, "+447911123456", ""},
		{"07911123456", "GG", false, "+447911123456", ""},
		{"+1 999 555 0143", "US", false, "", CodeInvalidNumber},
		{"+1 415 555 2671", "US", false, "+14155552671", ""},
		{"07400999999", "GB", false, "+447400999999", CodeOptedOut},
		{"+447400999999", "GB", true, "+447400999999", CodeOptedOut},
		{"", "GB", true, "", CodeInvalidNumber},
		{"+", "GB", true, "", CodeInvalidNumber},
		{"1", "GB", true, "", CodeInvalidNumber},
		{"0740012345", "GB", true, "", CodeInvalidNumber},
		{"074001234567890123", "GB", true, "", CodeInvalidNumber},
		{"0800 FLOWERS", "GB", true, "", CodeInvalidNumber},
		{"07400123456 ext 12", "GB", true, "", CodeInvalidNumber},
		{"+44+7400123456", "GB", true, "", CodeInvalidNumber},
		{"7400+123456", "GB", true, "", CodeInvalidNumber},
		{"+0044 7400123456", "GB", true, "", CodeInvalidNumber},
		{"07400\x00123456", "GB", true, "", CodeInvalidNumber},
		{"０７４００１２３４５６", "GB", true, "", CodeInvalidNumber},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			got := checkNumber(tt.input, tt.country, tt.international, optedOut)
			if got.number != tt.number || got.code != tt.code {
				t.Errorf("checkNumber(%q, %s, %v) = %q %q, want %q %q", tt.input, tt.country, tt.international, got.number, got.code, tt.number, tt.code)
			}
		})
	}
}

// TestCheckNumberNoOptOutList: a nil list opts nobody out.
func TestCheckNumberNoOptOutList(t *testing.T) {
	if got := checkNumber("07400123456", "GB", false, nil); got != (numberCheck{number: "+447400123456"}) {
		t.Errorf("got %+v", got)
	}
}
