package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestCommands(t *testing.T) {
	badCfg := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(badCfg, []byte("data_dir = \"x\"\n[ftp]\nlisen = \"1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		args        []string
		stdin       string
		code        int
		out, errOut string
	}{
		{"no command", nil, "", 2, "", "usage:"},
		{"unknown", []string{"frobnicate"}, "", 2, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, "", 0, "smsdrop ", ""},
		{"help", []string{"help"}, "", 0, "smsdrop check", ""},
		{"passwd empty", []string{"passwd"}, "\n", 2, "", "empty password"},
		{"serve unknown key", []string{"serve", "-config", badCfg}, "", 2, "", `"ftp.lisen"`},
		{"serve missing file", []string{"serve", "-config", filepath.Join(t.TempDir(), "none.toml")}, "", 2, "", "none.toml"},
		{"serve stray argument", []string{"serve", "extra"}, "", 2, "", `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, strings.NewReader(tt.stdin), &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.errOut) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errOut.String(), tt.code, tt.out, tt.errOut)
			}
		})
	}
}

func TestPasswdPrintsAVerifiableHash(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"passwd"}, strings.NewReader("s3cret pass\n"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	hash := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret pass")); err != nil {
		t.Errorf("hash %q does not verify: %v", hash, err)
	}
}
