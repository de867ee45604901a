package ftpd

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"golang.org/x/crypto/bcrypt"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"sms.txt", true},
		{"batch 2026-11-23.txt", true},
		{"é-accentué.txt", true},
		{"upload.tmp", true},
		{"upload.part", true},
		{"upload.filepart", true},
		{"upload.txt~", true},
		{strings.Repeat("a", maxNameLen), true},
		{"", false},
		{".hidden", true}, // SPEC §5: ignored until renamed
		{".sms.txt", true},
		{".upload-x", false}, // the server's temporary names
		{"..", false},
		{strings.Repeat("a", maxNameLen+1), false},
		{`a\b`, false},
		{"a/b", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"bad\xffutf8", false},
		{"x" + tempSuffix, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("checkName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestTempName(t *testing.T) {
	tests := []string{"sms.txt", "", strings.Repeat("é", 200), "a/b\\c\x01", "bad\xff"}
	for _, name := range tests {
		t.Run(name, func(t *testing.T) {
			tmp := TempName(name)
			if !strings.HasPrefix(tmp, ".") || !strings.HasSuffix(tmp, ".part") || !isTempName(tmp) {
				t.Fatalf("TempName(%q) = %q: not hidden, not .part, or not recognised", name, tmp)
			}
			if strings.ContainsAny(tmp, "/\\\x01") || !utf8.ValidString(tmp) || len(tmp) > 255 {
				t.Fatalf("TempName(%q) = %q: unsafe", name, tmp)
			}
			if TempName(name) == tmp {
				t.Fatalf("TempName(%q) twice gave %q", name, tmp)
			}
			if checkName(tmp) == nil {
				t.Fatalf("a client could upload under %q", tmp)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := map[string]string{
		"":                   "/",
		"/":                  "/",
		"a.txt":              "/a.txt",
		"../../etc/passwd":   "/etc/passwd",
		"/results/../x":      "/x",
		"//scheduled//a.txt": "/scheduled/a.txt",
		"/../demo2/x":        "/demo2/x",
	}
	for in, want := range tests {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no listen address", func(c *Config) { c.Listen = "" }, "listen"},
		{"relative account dir", func(c *Config) { c.Accounts[0].Dir = "accounts/demo" }, "absolute"},
		{"missing account dir", func(c *Config) { c.Accounts[0].Dir = filepath.Join(c.Accounts[0].Dir, "nope") }, "directory"},
		{"bad hash", func(c *Config) { c.Accounts[0].PasswordHash = "plain" }, "hash"},
		{"duplicate login", func(c *Config) { c.Accounts[1].Login = c.Accounts[0].Login }, "twice"},
		{"empty login", func(c *Config) { c.Accounts[0].Login = "" }, "empty login"},
		{"half passive range", func(c *Config) { c.PassiveStart = 30000 }, "passive"},
		{"reversed passive range", func(c *Config) { c.PassiveStart, c.PassiveEnd = 30100, 30000 }, "passive"},
		{"cert without key", func(c *Config) { c.TLSCert = "cert.pem" }, "key"},
		{"implicit without cert", func(c *Config) { c.TLSImplicit = true }, "implicit"},
		{"missing cert files", func(c *Config) { c.TLSCert, c.TLSKey = "/nonexistent/c.pem", "/nonexistent/k.pem" }, "certificate"},
		{"bans without window", func(c *Config) { c.MaxLoginFailures = 3 }, "window"},
		{"IPv6 public host", func(c *Config) { c.PublicHost = "::1" }, "IPv4"},
		{"negative quota", func(c *Config) { c.Accounts[0].Quota = -1 }, "negative"},
		{"invalid network", func(c *Config) { c.Accounts[0].AllowNets = []netip.Prefix{{}} }, "network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, _, _ := testConfig(t)
			tt.mutate(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	tests := []struct {
		name   string
		mutate func(*Config)
		check  func(*testing.T, *ftpserver.Settings)
	}{
		{"defaults", func(*Config) {}, func(t *testing.T, s *ftpserver.Settings) {
			if s.DefaultTransferType != ftpserver.TransferTypeBinary || !s.DisableSite || !s.DisableMFMT {
				t.Fatalf("settings %+v", s)
			}
			if s.PassiveTransferPortRange != nil || s.IdleTimeout != 0 || s.TLSRequired != ftpserver.ClearOrEncrypted {
				t.Fatalf("settings %+v", s)
			}
		}},
		{"idle timeout rounds up", func(c *Config) { c.IdleTimeout = 1500 * time.Millisecond }, func(t *testing.T, s *ftpserver.Settings) {
			if s.IdleTimeout != 2 {
				t.Fatalf("idle timeout %d", s.IdleTimeout)
			}
		}},
		{"passive range and public host", func(c *Config) {
			c.PassiveStart, c.PassiveEnd, c.PublicHost = 30000, 30100, "192.0.2.7"
		}, func(t *testing.T, s *ftpserver.Settings) {
			r, ok := s.PassiveTransferPortRange.(ftpserver.PortRange)
			if !ok || r.Start != 30000 || r.End != 30100 || s.PublicHost != "192.0.2.7" {
				t.Fatalf("settings %+v", s)
			}
		}},
		{"implicit TLS", func(c *Config) { c.TLSCert, c.TLSKey, c.TLSImplicit = certFile, keyFile, true }, func(t *testing.T, s *ftpserver.Settings) {
			if s.TLSRequired != ftpserver.ImplicitEncryption {
				t.Fatalf("TLS mode %v", s.TLSRequired)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, _, _ := testConfig(t)
			tt.mutate(&cfg)
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s.settings)
		})
	}
}

// The last password that passed is accepted again without bcrypt; anything
// else goes through bcrypt, every time, and a changed hash forgets it.
func TestCheckPasswordCache(t *testing.T) {
	hashA, hashB := hash(t, "right"), hash(t, "new password")
	acct := &account{Account: Account{Login: "a", PasswordHash: hashA}}
	type step struct {
		hash  string // the account's hash from this step on
		pass  string
		ok    bool
		calls int // bcrypt comparisons made by this step
	}
	steps := []step{
		{hashA, "right", true, 1},
		{hashA, "right", true, 0},
		{hashA, "wrong", false, 1},
		{hashA, "wrong", false, 1},
		{hashA, "right", true, 0},
		{hashA, "", false, 1},
		{hashB, "right", false, 1},
		{hashB, "new password", true, 1},
		{hashB, "new password", true, 0},
		{hashB, "right", false, 1},
	}
	for i, s := range steps {
		acct.PasswordHash = s.hash
		calls := 0
		compare := func(h, pw []byte) error {
			calls++
			return bcrypt.CompareHashAndPassword(h, pw)
		}
		if got := acct.checkPassword(s.pass, compare); got != s.ok || calls != s.calls {
			t.Fatalf("step %d (%q): ok %v with %d bcrypt calls, want %v with %d", i, s.pass, got, calls, s.ok, s.calls)
		}
	}
}
