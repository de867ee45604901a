package batch

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in fixtures/")

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(fixtures, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// TestReportGolden renders SPEC §7's example report, a check report, and
// the hostile values a report must keep on one line each.
func TestReportGolden(t *testing.T) {
	paris := time.FixedZone("", 3600)
	tests := []struct {
		golden string
		r      Report
	}{
		{"report_full.golden", Report{
			Batch:       42,
			File:        "sms.txt",
			Account:     "demo",
			Received:    time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
			State:       "sending",
			Scheduled:   time.Date(2026, 11, 23, 12, 30, 0, 0, paris),
			Messages:    3,
			Recipients:  8,
			Segments:    9,
			Counts:      &[6]int{2, 3, 2, 1, 0, 0},
			DuplicateOf: 17,
			Errors:      []string{`line 5: D-: invalid date "2017-13-45"`},
			Warnings:    []string{`line 3: "ô" replaced by "o"`},
		}},
		{"report_check.golden", Report{
			File:     "fixtures/sms.txt",
			State:    "invalid",
			Errors:   []string{"no U- line", "line 4: unknown line"},
			Warnings: []string{"line 2: a", "line 3: b"},
		}},
		{"report_rejected.golden", Report{
			Batch:      7,
			File:       "bad\nname\x00.txt",
			Account:    "demo",
			Received:   time.Date(2026, 11, 23, 10, 0, 0, 0, paris),
			State:      "rejected",
			Counts:     &[6]int{},
			Optout:     1,
			Recipients: 0,
			Errors:     []string{"line 1: \"\\\" and\r\nnewline"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := tt.r.WriteTo(&buf)
			if err != nil || n != int64(buf.Len()) {
				t.Fatalf("WriteTo = %d, %v; wrote %d", n, err, buf.Len())
			}
			compareGolden(t, tt.golden, buf.Bytes())
		})
	}
}

type shortWriter struct{ n int }

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestReportWriteError: WriteTo reports the writer's error and what got
// through.
func TestReportWriteError(t *testing.T) {
	r := Report{File: "a.txt", State: "valid"}
	n, err := r.WriteTo(&shortWriter{n: 10})
	if err == nil || n != 10 {
		t.Errorf("WriteTo = %d, %v; want 10, disk full", n, err)
	}
}

// TestIssueStrings: the batch's issues as report values.
func TestIssueStrings(t *testing.T) {
	b := &Batch{
		Errors:   []Issue{{Line: 5, Msg: "D-: bad"}, {Msg: "no U- line"}},
		Warnings: []Issue{{Line: 3, Msg: `"ô" replaced by "o"`}},
	}
	if got := b.ErrorStrings(); len(got) != 2 || got[0] != "line 5: D-: bad" || got[1] != "no U- line" {
		t.Errorf("ErrorStrings = %q", got)
	}
	if got := b.WarningStrings(); len(got) != 1 || got[0] != `line 3: "ô" replaced by "o"` {
		t.Errorf("WarningStrings = %q", got)
	}
	if got := (&Batch{}).ErrorStrings(); got != nil {
		t.Errorf("no errors gave %q", got)
	}
}
