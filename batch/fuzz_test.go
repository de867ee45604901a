package batch

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// fixtures is where the example and test drop files live.
const fixtures = "../fixtures"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzParse feeds Parse arbitrary bytes, seeded with every fixture drop
// file, and checks that it never panics and that what it returns holds
// together.
func FuzzParse(f *testing.F) {
	names, err := filepath.Glob(filepath.Join(fixtures, "*.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("U-DEMO\nT-#1# (%2) ô 😀\n#-07400123456;é\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := testSettings()
		s.Code = ""
		s.MaxRecipients = 50
		s.MaxSegments = 3
		s.MaxFileSize = 1 << 16
		s.Workers = 2
		b, err := Parse(bytes.NewReader(data), s)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		checkBatch(t, b, s)
	})
}

// checkBatch asserts the invariants every parse result keeps.
func checkBatch(t *testing.T, b *Batch, s Settings) {
	t.Helper()
	if len(b.Errors) > MaxIssues+1 || len(b.Warnings) > MaxIssues+1 {
		t.Errorf("%d errors, %d warnings: not capped", len(b.Errors), len(b.Warnings))
	}
	if b.Decoding != "utf-8" && b.Decoding != "windows-1252" {
		t.Errorf("decoding %q", b.Decoding)
	}
	if len(b.Recipients) > s.MaxRecipients {
		t.Errorf("%d recipients kept, max %d", len(b.Recipients), s.MaxRecipients)
	}
	if b.Valid() && (len(b.Messages) == 0 || len(b.Recipients) == 0) {
		t.Errorf("valid without messages or recipients")
	}
	segments := 0
	line := 0
	for _, r := range b.Recipients {
		if r.Line <= line || r.Message < 1 || r.Message > len(b.Messages) {
			t.Errorf("recipient %+v out of order or of an unknown message", r)
		}
		line = r.Line
		switch {
		case r.Status == StatusWait && r.Code == "":
			segments += r.Segments
			if r.Number == "" || r.Segments < 1 || r.Segments > s.MaxSegments {
				t.Errorf("waiting recipient %+v", r)
			}
		case r.Status == StatusKO && r.Code != "":
		default:
			t.Errorf("recipient status %q code %q", r.Status, r.Code)
		}
		if r.Code == CodeInvalidNumber && r.Number != "" {
			t.Errorf("invalid number kept: %+v", r)
		}
		if !utf8.ValidString(r.Text) {
			t.Errorf("text %q is not UTF-8", r.Text)
		}
	}
	if segments != b.Segments {
		t.Errorf("segments %d, recipients add up to %d", b.Segments, segments)
	}
	for _, is := range append(b.Errors, b.Warnings...) {
		if strings.ContainsAny(is.Msg, "\n\r") || !utf8.ValidString(is.Msg) {
			t.Errorf("issue %q is not one line of UTF-8", is.Msg)
		}
	}
}

// TestFixturesHold runs the fuzz invariants over the fixtures with the
// default settings.
func TestFixturesHold(t *testing.T) {
	names, err := filepath.Glob(filepath.Join(fixtures, "*.txt"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, name := range names {
		t.Run(filepath.Base(name), func(t *testing.T) {
			s, err := testSettings().withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			s.Code = ""
			b, err := Parse(bytes.NewReader(readFixture(t, filepath.Base(name))), s)
			if err != nil {
				t.Fatal(err)
			}
			checkBatch(t, b, s)
		})
	}
}
