package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic and that whatever it
// accepts keeps the promises the rest of smsdrop relies on without checking
// again.
func FuzzParse(f *testing.F) {
	seeds := []string{examplePath}
	more, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range append(seeds, more...) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(validAccount + "max_file_size = \"10MiB\"\nallow_ips = [\"::1\", \"10.0.0.0/8\"]\n"))
	f.Add([]byte("[sender]\nvalidity = 3600\n[ftp]\npassive_ports = \"1-2\"\n" + validAccount))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config with its error")
			}
			return
		}
		if c.DataDir == "" || c.Sender.Sim.Outbox == "" {
			t.Fatalf("empty data_dir or outbox accepted: %+v", c)
		}
		if c.FTP.PassiveStart < 1 || c.FTP.PassiveStart > c.FTP.PassiveEnd || c.FTP.PassiveEnd > 65535 {
			t.Fatalf("bad passive range accepted: %d-%d", c.FTP.PassiveStart, c.FTP.PassiveEnd)
		}
		if c.Sender.Rate < 0 || c.Sender.Rate != c.Sender.Rate {
			t.Fatalf("bad rate accepted: %v", c.Sender.Rate)
		}
		if c.Processing.Rescan <= 0 || c.Sender.SMPP.EnquireLink <= 0 {
			t.Fatal("zero interval accepted")
		}
		if len(c.Accounts) == 0 {
			t.Fatal("no accounts accepted")
		}
		for _, a := range c.Accounts {
			if a.Login == "" || a.Login[0] == '.' || a.Location == nil || !looksLikeBcrypt(a.PasswordHash) {
				t.Fatalf("bad account accepted: %+v", a)
			}
			if a.MaxSegments < 1 || a.MaxSegments > 255 || a.MaxRecipients < 1 || a.MaxFileSize < 1 || a.Quota < 0 {
				t.Fatalf("bad account limits accepted: %+v", a)
			}
			if len(a.AllowNets) != len(a.AllowIPs) {
				t.Fatalf("allow_ips %v parsed to %v", a.AllowIPs, a.AllowNets)
			}
			if !isRegion(a.Country) {
				t.Fatalf("bad country accepted: %q", a.Country)
			}
			_ = a.BatchSettings()
		}
	})
}
