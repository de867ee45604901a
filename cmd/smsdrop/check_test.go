package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in fixtures/")

// checkNow is the fixed clock of the check goldens: D- dates in 2026 are
// in the future, the seed's 2017 date in the past.
func checkNow() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }

// TestCheckGolden runs check -v on every fixture, with the account flags a
// fixture needs, and compares stdout with fixtures/GOLDEN.check.golden.
func TestCheckGolden(t *testing.T) {
	t.Chdir("../../fixtures")
	tests := []struct {
		golden string
		args   []string
		status int
	}{
		{"seed_4_2", []string{"-v", "seed_4_2.txt"}, 0},
		{"seed_4_3_hash", []string{"-v", "-code", "DEMO", "seed_4_3_hash.txt"}, 0},
		{"seed_4_3_percent", []string{"-v", "-code", "demo", "seed_4_3_percent.txt"}, 0},
		{"seed_4_4", []string{"-v", "seed_4_4.txt"}, 0},
		{"scheduled", []string{"-v", "scheduled.txt"}, 0},
		{"scheduled_offset", []string{"-v", "scheduled_offset.txt"}, 0},
		{"bom_crlf", []string{"-v", "bom_crlf.txt"}, 0},
		{"cr", []string{"-v", "cr.txt"}, 0},
		{"blank_lines", []string{"-v", "blank_lines.txt"}, 0},
		{"cp1252", []string{"-v", "cp1252.txt"}, 0},
		{"transliteration", []string{"-v", "transliteration.txt"}, 0},
		{"transliteration_unicode", []string{"-v", "-charset", "unicode", "transliteration.txt"}, 0},
		{"transliteration_auto", []string{"-v", "-charset", "auto", "transliteration.txt"}, 0},
		{"personalisation", []string{"-v", "personalisation.txt"}, 0},
		{"field_changes", []string{"-v", "field_changes.txt"}, 0},
		{"field_changes_auto", []string{"-v", "-charset", "auto", "field_changes.txt"}, 0},
		{"numbers", []string{"-v", "numbers.txt"}, 0},
		{"numbers_international", []string{"-v", "-international", "numbers.txt"}, 0},
		{"numbers_fr", []string{"-v", "-country", "fr", "numbers.txt"}, 0},
		{"too_long", []string{"-v", "too_long.txt"}, 0},
		{"template_too_long", []string{"-v", "template_too_long.txt"}, 1},
		{"too_many_recipients", []string{"-v", "too_many_recipients.txt"}, 1},
		{"unknown_line", []string{"-v", "unknown_line.txt"}, 1},
		{"lowercase_tag", []string{"lowercase_tag.txt"}, 1},
		{"recipient_before_text", []string{"recipient_before_text.txt"}, 1},
		{"second_u", []string{"second_u.txt"}, 1},
		{"second_d", []string{"second_d.txt"}, 1},
		{"d_after_text", []string{"d_after_text.txt"}, 1},
		{"u_not_first", []string{"u_not_first.txt"}, 1},
		{"no_u", []string{"no_u.txt"}, 1},
		{"no_text", []string{"no_text.txt"}, 1},
		{"no_recipients", []string{"no_recipients.txt"}, 1},
		{"wrong_code", []string{"-code", "DEMO", "wrong_code.txt"}, 1},
		{"any_code", []string{"wrong_code.txt"}, 0},
		{"invalid_date", []string{"invalid_date.txt"}, 1},
		{"date_too_far", []string{"date_too_far.txt"}, 1},
		{"empty", []string{"empty.txt"}, 1},
		{"utf16", []string{"utf16.txt"}, 1},
		{"nul", []string{"-v", "nul.txt"}, 1},
		{"missing_file", []string{"no_such_file.txt"}, 1},
		{"directory", []string{"."}, 1},
		{"several_files", []string{"seed_4_3_hash.txt", "-v", "no_u.txt", "--", "scheduled.txt"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := checker{now: checkNow}.run(tt.args, &stdout, &stderr)
			if status != tt.status {
				t.Errorf("status %d, want %d; stderr:\n%s", status, tt.status, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
			compareGolden(t, tt.golden+".check.golden", stdout.Bytes())
		})
	}
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", filepath.Base(name), got, want)
	}
}

// TestCheckUsage covers the usage errors, which exit 2 with a message and
// the usage on stderr and print nothing on stdout.
func TestCheckUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no file", nil, "no FILE given"},
		{"only flags", []string{"-v", "-international"}, "no FILE given"},
		{"unknown flag", []string{"-x", "a.txt"}, "flag provided but not defined: -x"},
		{"bad charset", []string{"-charset", "latin1", "a.txt"}, `-charset "latin1": use gsm, unicode or auto`},
		{"bad country", []string{"-country", "UK", "a.txt"}, `-country "UK": use an ISO 3166 alpha-2 code`},
		{"missing value", []string{"a.txt", "-code"}, "flag needs an argument: -code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if status := runCheck(tt.args, &stdout, &stderr); status != 2 {
				t.Errorf("status %d, want 2", status)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q, want nothing", stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.want) || !strings.Contains(stderr.String(), "usage: smsdrop check") {
				t.Errorf("stderr %q, want %q and the usage", stderr.String(), tt.want)
			}
		})
	}
}

// TestCheckHelp: -h prints the usage and is not an error.
func TestCheckHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := runCheck([]string{"-h"}, &stdout, &stderr); status != 0 {
		t.Errorf("status %d, want 0", status)
	}
	if !strings.Contains(stderr.String(), "-international") {
		t.Errorf("stderr %q lacks the flags", stderr.String())
	}
}

// TestCheckStdoutFailure: a failing stdout is reported on stderr, status 1.
func TestCheckStdoutFailure(t *testing.T) {
	var stderr bytes.Buffer
	status := checker{now: checkNow}.run([]string{"-v", "../../fixtures/seed_4_2.txt"}, failWriter{}, &stderr)
	if status != 1 || !strings.Contains(stderr.String(), "write the report of") {
		t.Errorf("status %d, stderr %q", status, stderr.String())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }
