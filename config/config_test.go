package config

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"golang.org/x/crypto/bcrypt"

	"smsdrop/batch"
)

// examplePath is the documented configuration at the top of the repository.
const examplePath = "../config.example.toml"

// validAccount is the smallest valid [[account]]; rows that test something
// else append keys to it or put tables before it.
const validAccount = `
[[account]]
login = "a"
password_hash = "` + demoPasswordHash + `"
code = "A"
`

func TestDefaultDemoAccount(t *testing.T) {
	c := Default()
	if len(c.Accounts) != 1 {
		t.Fatalf("Default has %d accounts, want 1", len(c.Accounts))
	}
	a := c.Accounts[0]
	if a.Login != "demo" || a.Code != "DEMO" {
		t.Errorf("demo account: login %q code %q, want demo, DEMO", a.Login, a.Code)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte("demo")); err != nil {
		t.Errorf("demo password hash does not match \"demo\": %v", err)
	}
	if !looksLikeBcrypt(a.PasswordHash) {
		t.Errorf("demo password hash %q would fail validation", a.PasswordHash)
	}
	if a.Location != time.UTC {
		t.Errorf("demo Location = %v, want UTC", a.Location)
	}
	if want := filepath.Join("data", "sim-outbox.jsonl"); c.Sender.Sim.Outbox != want {
		t.Errorf("Outbox = %q, want %q", c.Sender.Sim.Outbox, want)
	}
}

func TestDefaultReturnsIndependentValues(t *testing.T) {
	a := Default()
	a.Processing.OptoutKeywords[0] = "changed"
	a.Accounts[0].Login = "changed"
	b := Default()
	if b.Processing.OptoutKeywords[0] != "STOP" || b.Accounts[0].Login != "demo" {
		t.Fatal("changing one Default() result changed the next one")
	}
}

func TestDefaultMatchesBatchDefaults(t *testing.T) {
	s := Default().Accounts[0].BatchSettings()
	if s.MaxSegments != batch.DefaultMaxSegments || s.MaxRecipients != batch.DefaultMaxRecipients ||
		s.MaxFileSize != batch.DefaultMaxFileSize || s.MaxScheduleAhead != batch.DefaultMaxScheduleAhead ||
		s.Country != batch.DefaultCountry || s.Charset != batch.CharsetGSM {
		t.Errorf("default account settings %+v disagree with the batch package defaults", s)
	}
}

func TestExampleMatchesDefault(t *testing.T) {
	got, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("config.example.toml drifted from Default():\n got %+v\nwant %+v", got, want)
	}
}

// rawKeys lists the dotted TOML keys of a raw struct type, descending into
// tables and arrays of tables.
func rawKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := prefix + tomlName(f)
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			keys = append(keys, rawKeys(ft, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	keys := rawKeys(reflect.TypeFor[rawConfig](), "")
	if len(keys) < 50 {
		t.Fatalf("found only %d keys in the raw types; rawKeys is broken", len(keys))
	}
	for _, key := range keys {
		if !hasKey(doc, strings.Split(key, ".")) {
			t.Errorf("config.example.toml does not set %q", key)
		}
	}
}

// hasKey reports whether the decoded document has the key path, looking into
// the first entry of an array of tables.
func hasKey(doc map[string]any, path []string) bool {
	v, ok := doc[path[0]]
	if !ok {
		return false
	}
	if len(path) == 1 {
		return true
	}
	switch x := v.(type) {
	case map[string]any:
		return hasKey(x, path[1:])
	case []any:
		if len(x) == 0 {
			return false
		}
		m, ok := x[0].(map[string]any)
		return ok && hasKey(m, path[1:])
	default:
		return false
	}
}

func TestParseTestdata(t *testing.T) {
	minimal := Default()
	minimal.Accounts[0].Login = "acme"
	minimal.Accounts[0].Code = "ACME"

	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	shop := defaultAccount()
	shop.Login = "shop_2"
	shop.PasswordHash = "$2a$04$scuJIvjWZ9WmyFeYbLi7DO.xREPMh/OUmKaTxXK01urUuu5sMJmsq"
	shop.Code = "SHOP2"
	shop.SenderID = "+447700900123"
	full := &Config{
		DataDir: "/var/lib/smsdrop",
		Log:     Log{Format: "json", Level: "debug"},
		FTP: FTP{
			Listen:              ":21",
			PublicHost:          "203.0.113.10",
			PassivePorts:        "40000-40009",
			PassiveStart:        40000,
			PassiveEnd:          40009,
			TLSCert:             "/etc/smsdrop/cert.pem",
			TLSKey:              "/etc/smsdrop/key.pem",
			TLSImplicit:         true,
			IdleTimeout:         90 * time.Second,
			MaxConnections:      50,
			MaxConnectionsPerIP: 3,
			MaxLoginFailures:    7,
			LoginFailureWindow:  time.Hour,
			BanTime:             150 * time.Minute,
		},
		HTTP: HTTP{Listen: "127.0.0.1:9120"},
		Sender: Sender{
			Driver:         "smpp",
			Rate:           2.5,
			Validity:       48 * time.Hour,
			ReceiptTimeout: 96 * time.Hour,
			Sim:            SimSender{DeliveryDelay: 0, Outbox: "outbox.jsonl"},
			SMPP: SMPPSender{
				Addr: "smsc.example.com:2775", SystemID: "smsdrop", Password: "secret",
				SystemType: "VMA", SourceAddr: "SMSDROP", Window: 32, EnquireLink: 15 * time.Second,
			},
		},
		Processing: Processing{
			Settle:         500 * time.Millisecond,
			Rescan:         time.Minute,
			Retention:      2160 * time.Hour,
			OptoutKeywords: []string{"STOP", "Stopp"},
		},
		Accounts: []Account{
			{
				Login:         "acme.fr",
				PasswordHash:  demoPasswordHash,
				Code:          "ACME",
				Country:       "FR",
				Timezone:      "Europe/Paris",
				Location:      paris,
				International: true,
				Charset:       batch.CharsetAuto,
				MaxSegments:   10,
				MaxRecipients: 50000,
				MaxFileSize:   1 << 20,
				Quota:         1 << 30,
				SenderID:      "ACME Corp",
				Rate:          5,
				AllowIPs:      []string{"192.0.2.0/24", "2001:db8::1", "198.51.100.7/16"},
				AllowNets: []netip.Prefix{
					netip.MustParsePrefix("192.0.2.0/24"),
					netip.MustParsePrefix("2001:db8::1/128"),
					netip.MustParsePrefix("198.51.0.0/16"),
				},
				TLSRequired:              true,
				RejectFileOnBadRecipient: true,
				DedupeWindow:             0,
				MaxScheduleAhead:         720 * time.Hour,
			},
			shop,
		},
	}

	tests := []struct {
		file string
		want *Config
	}{
		{"minimal.toml", minimal},
		{"full.toml", full},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			// Two loads of one zone are equal but not the same pointer,
			// and their lookup caches may differ: compare names.
			for i := range got.Accounts {
				if i < len(tt.want.Accounts) && got.Accounts[i].Location.String() != tt.want.Accounts[i].Location.String() {
					t.Errorf("account %d Location = %v, want %v", i, got.Accounts[i].Location, tt.want.Accounts[i].Location)
				}
			}
			want := *tt.want
			want.Accounts = slices.Clone(tt.want.Accounts)
			for i := range want.Accounts {
				want.Accounts[i].Location = nil
			}
			for i := range got.Accounts {
				got.Accounts[i].Location = nil
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("Load(%s):\n got %+v\nwant %+v", tt.file, got, &want)
			}
		})
	}
}

func TestPerAccountDefaults(t *testing.T) {
	c, err := Parse([]byte(validAccount + `charset = "unicode"
max_segments = 3
` + strings.ReplaceAll(strings.ReplaceAll(validAccount, `"a"`, `"b"`), `"A"`, `"B"`)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Accounts[0].Charset != batch.CharsetUnicode || c.Accounts[0].MaxSegments != 3 {
		t.Errorf("first account did not keep its own values: %+v", c.Accounts[0])
	}
	want := defaultAccount()
	want.Login, want.PasswordHash, want.Code = "b", demoPasswordHash, "B"
	if !reflect.DeepEqual(c.Accounts[1], want) {
		t.Errorf("second account:\n got %+v\nwant %+v", c.Accounts[1], want)
	}
}

func TestOutbox(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"default data_dir", "", filepath.Join("data", "sim-outbox.jsonl")},
		{"follows data_dir", `data_dir = "/srv/sms"`, "/srv/sms/sim-outbox.jsonl"},
		{"relative data_dir stays relative", `data_dir = "var/sms"`, "var/sms/sim-outbox.jsonl"},
		{"empty outbox means default", "data_dir = \"/d\"\n[sender.sim]\noutbox = \"\"", "/d/sim-outbox.jsonl"},
		{"explicit outbox kept", "data_dir = \"/d\"\n[sender.sim]\noutbox = \"out.jsonl\"", "out.jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml + "\n" + validAccount))
			if err != nil {
				t.Fatal(err)
			}
			if c.Sender.Sim.Outbox != tt.want {
				t.Errorf("Outbox = %q, want %q", c.Sender.Sim.Outbox, tt.want)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		check func(*Config) bool
	}{
		{"single passive port", "[ftp]\npassive_ports = \"30000\"", func(c *Config) bool {
			return c.FTP.PassiveStart == 30000 && c.FTP.PassiveEnd == 30000
		}},
		{"passive ports with spaces", "[ftp]\npassive_ports = \"30000 - 30010\"", func(c *Config) bool {
			return c.FTP.PassiveStart == 30000 && c.FTP.PassiveEnd == 30010
		}},
		{"listen port 0", "[ftp]\nlisten = \"127.0.0.1:0\"", func(c *Config) bool {
			return c.FTP.Listen == "127.0.0.1:0"
		}},
		{"integer rate", "[sender]\nrate = 0", func(c *Config) bool { return c.Sender.Rate == 0 }},
		{"empty optout list", "[processing]\noptout_keywords = []", func(c *Config) bool {
			return c.Processing.OptoutKeywords == nil
		}},
		{"smpp driver", "[sender]\ndriver = \"smpp\"\n[sender.smpp]\naddr = \"[::1]:2775\"\nsystem_id = \"x\"", func(c *Config) bool {
			return c.Sender.Driver == "smpp"
		}},
		{"lower-case country", validAccount + `country = "de"`, func(c *Config) bool {
			return c.Accounts[0].Country == "DE"
		}},
		{"size as integer", validAccount + `max_file_size = 2048`, func(c *Config) bool {
			return c.Accounts[0].MaxFileSize == 2048
		}},
		{"quota as size", validAccount + `quota = "5 GB"`, func(c *Config) bool {
			return c.Accounts[0].Quota == 5e9
		}},
		{"bare IPv4 is /32", validAccount + `allow_ips = ["10.1.2.3"]`, func(c *Config) bool {
			return c.Accounts[0].AllowNets[0] == netip.MustParsePrefix("10.1.2.3/32")
		}},
		{"alphanumeric sender_id of 11", validAccount + `sender_id = "Shop 24 Ltd"`, func(c *Config) bool {
			return c.Accounts[0].SenderID == "Shop 24 Ltd"
		}},
		{"numeric sender_id of 15", validAccount + `sender_id = "447700900123456"`, func(c *Config) bool {
			return c.Accounts[0].SenderID == "447700900123456"
		}},
		{"login with dot dash underscore", strings.Replace(validAccount, `login = "a"`, `login = "A.b_c-9"`, 1), func(c *Config) bool {
			return c.Accounts[0].Login == "A.b_c-9"
		}},
		{"tls_required with cert", "[ftp]\ntls_cert = \"c\"\ntls_key = \"k\"\n" + validAccount + "tls_required = true", func(c *Config) bool {
			return c.Accounts[0].TLSRequired
		}},
		{"local time zone", validAccount + `timezone = "America/New_York"`, func(c *Config) bool {
			return c.Accounts[0].Location.String() == "America/New_York"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toml := tt.toml
			if !strings.Contains(toml, "[[account]]") {
				toml += "\n" + validAccount
			}
			c, err := Parse([]byte(toml))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected result: %+v", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const hash = demoPasswordHash
	tests := []struct {
		name string
		toml string
		want string // a substring of the error
	}{
		// Unknown keys, wherever they are.
		{"unknown top-level key", "data_dri = \"x\"\n" + validAccount, `config: unknown key "data_dri" (line 1); see config.example.toml for the keys`},
		{"unknown key in table", "[ftp]\n\nlisen = \"x\"\n" + validAccount, `config: unknown key "ftp.lisen" (line 3); see config.example.toml for the keys`},
		{"unknown table", "[smtp]\nlisten = \"x\"\n" + validAccount, `unknown key "smtp"`},
		{"unknown sub-table", "[sender.sms]\naddr = \"x\"\n" + validAccount, `unknown key "sender.sms"`},
		{"unknown key in account", validAccount + "pasword = \"x\"\n", `unknown key "account.pasword" (line 6)`},
		{"unknown key in second account", validAccount + strings.Replace(validAccount, `"a"`, `"b"`, 1) + "colour = 1\n", `unknown key "account.colour" (line 11)`},

		// Types and syntax.
		{"string for integer", "[ftp]\nmax_connections = \"ten\"\n" + validAccount, `config: ftp.max_connections (line 2): wrong type of value: use an integer`},
		{"integer for string", "data_dir = 1\n" + validAccount, `config: data_dir (line 1): wrong type of value: use a string`},
		{"table for string", validAccount + "timezone.x = 1\n", `account.timezone (line 6): wrong type of value: use a string`},
		{"integer in string array", "[processing]\noptout_keywords = [1]\n" + validAccount, `processing.optout_keywords (line 2): wrong type of value: use an array of strings`},
		{"integer for table", "ftp = 1\n" + validAccount, `ftp (line 1): wrong type of value: use a [table]`},
		{"array of tables for table", "[[ftp]]\n" + validAccount, `ftp (line 1): wrong type of value: use a [table]`},
		{"syntax error", "data_dir = \n" + validAccount, `config: line 1, column`},
		{"duplicate key", "data_dir = \"a\"\ndata_dir = \"b\"\n" + validAccount, `line 2`},

		// Globals.
		{"empty data_dir", "data_dir = \"\"\n" + validAccount, `config: data_dir: must not be empty`},
		{"bad log format", "[log]\nformat = \"xml\"\n" + validAccount, `config: log.format: invalid value "xml": use "text" or "json"`},
		{"bad log level", "[log]\nlevel = \"trace\"\n" + validAccount, `log.level: invalid value "trace"`},
		{"bad ftp listen", "[ftp]\nlisten = \"2121\"\n" + validAccount, `config: ftp.listen: invalid address "2121": use host:port like "127.0.0.1:2121"`},
		{"bad ftp listen port", "[ftp]\nlisten = \":99999\"\n" + validAccount, `ftp.listen: invalid port in ":99999"`},
		{"bad http listen", "[http]\nlisten = \"localhost\"\n" + validAccount, `http.listen: invalid address "localhost"`},
		{"http on ftp port", "[http]\nlisten = \"127.0.0.1:2121\"\n" + validAccount, `http.listen: "127.0.0.1:2121" is also ftp.listen`},
		{"public host a name", "[ftp]\npublic_host = \"ftp.example.com\"\n" + validAccount, `config: ftp.public_host: "ftp.example.com" is not an IPv4 address`},
		{"public host IPv6", "[ftp]\npublic_host = \"::1\"\n" + validAccount, `ftp.public_host: "::1" is not an IPv4 address`},
		{"passive ports malformed", "[ftp]\npassive_ports = \"30000:30100\"\n" + validAccount, `config: ftp.passive_ports: invalid port range "30000:30100": use "FIRST-LAST"`},
		{"passive ports empty", "[ftp]\npassive_ports = \"\"\n" + validAccount, `ftp.passive_ports: invalid port range ""`},
		{"passive ports reversed", "[ftp]\npassive_ports = \"30100-30000\"\n" + validAccount, `ftp.passive_ports: invalid port range "30100-30000": the first port is above the last`},
		{"passive port zero", "[ftp]\npassive_ports = \"0-10\"\n" + validAccount, `ftp.passive_ports: invalid port range "0-10"`},
		{"passive port too big", "[ftp]\npassive_ports = \"65000-65536\"\n" + validAccount, `ftp.passive_ports: invalid port range`},
		{"tls_cert without key", "[ftp]\ntls_cert = \"c.pem\"\n" + validAccount, `config: ftp.tls_cert: is set without ftp.tls_key`},
		{"tls_key without cert", "[ftp]\ntls_key = \"k.pem\"\n" + validAccount, `config: ftp.tls_key: is set without ftp.tls_cert`},
		{"tls_implicit without cert", "[ftp]\ntls_implicit = true\n" + validAccount, `config: ftp.tls_implicit: needs ftp.tls_cert and ftp.tls_key`},
		{"max_connections zero", "[ftp]\nmax_connections = 0\n" + validAccount, `ftp.max_connections: 0 is out of range: use at least 1`},
		{"max_connections_per_ip negative", "[ftp]\nmax_connections_per_ip = -1\n" + validAccount, `ftp.max_connections_per_ip: -1 is out of range`},
		{"max_login_failures zero", "[ftp]\nmax_login_failures = 0\n" + validAccount, `ftp.max_login_failures: 0 is out of range`},
		{"negative idle_timeout", "[ftp]\nidle_timeout = \"-5m\"\n" + validAccount, `config: ftp.idle_timeout: negative duration "-5m"`},
		{"zero ban_time", "[ftp]\nban_time = \"0s\"\n" + validAccount, `ftp.ban_time: duration must be more than 0`},
		{"bad driver", "[sender]\ndriver = \"http\"\n" + validAccount, `config: sender.driver: invalid value "http": use "sim" or "smpp"`},
		{"negative rate", "[sender]\nrate = -1\n" + validAccount, `config: sender.rate: invalid rate -1`},
		{"nan rate", "[sender]\nrate = nan\n" + validAccount, `sender.rate: invalid rate NaN`},
		{"inf rate", "[sender]\nrate = inf\n" + validAccount, `sender.rate: invalid rate +Inf`},
		{"invalid duration", "[sender]\nvalidity = \"3 days\"\n" + validAccount, `config: sender.validity: invalid duration "3 days": use Go durations like "72h"`},
		{"integer duration", "[sender]\nvalidity = 3600\n" + validAccount, `config: sender.validity: want a duration in quotes, like "90s" or "72h", not the integer 3600`},
		{"table duration", "[sender]\nvalidity = {h = 1}\n" + validAccount, `sender.validity: want a duration in quotes, like "90s" or "72h", not a table`},
		{"negative receipt_timeout", "[sender]\nreceipt_timeout = \"-1h\"\n" + validAccount, `sender.receipt_timeout: negative duration`},
		{"negative delivery_delay", "[sender.sim]\ndelivery_delay = \"-1s\"\n" + validAccount, `sender.sim.delivery_delay: negative duration`},
		{"smpp without addr", "[sender]\ndriver = \"smpp\"\n[sender.smpp]\nsystem_id = \"x\"\n" + validAccount, `config: sender.smpp.addr: is required with driver "smpp"`},
		{"smpp without system_id", "[sender]\ndriver = \"smpp\"\n[sender.smpp]\naddr = \"h:2775\"\n" + validAccount, `config: sender.smpp.system_id: is required with driver "smpp"`},
		{"smpp bad addr", "[sender]\ndriver = \"smpp\"\n[sender.smpp]\naddr = \"smsc\"\nsystem_id = \"x\"\n" + validAccount, `sender.smpp.addr: invalid address "smsc"`},
		{"smpp port zero", "[sender]\ndriver = \"smpp\"\n[sender.smpp]\naddr = \"smsc:0\"\nsystem_id = \"x\"\n" + validAccount, `sender.smpp.addr: invalid port in "smsc:0"`},
		{"smpp window zero", "[sender.smpp]\nwindow = 0\n" + validAccount, `sender.smpp.window: 0 is out of range`},
		{"zero enquire_link", "[sender.smpp]\nenquire_link = \"0s\"\n" + validAccount, `sender.smpp.enquire_link: duration must be more than 0`},
		{"negative settle", "[processing]\nsettle = \"-2s\"\n" + validAccount, `processing.settle: negative duration`},
		{"zero rescan", "[processing]\nrescan = \"0s\"\n" + validAccount, `processing.rescan: duration must be more than 0`},
		{"negative retention", "[processing]\nretention = \"-1h\"\n" + validAccount, `processing.retention: negative duration`},
		{"blank optout keyword", "[processing]\noptout_keywords = [\"STOP\", \" \"]\n" + validAccount, `processing.optout_keywords: entry 2 is blank`},

		// Accounts.
		{"no accounts", "data_dir = \"x\"\n", `config: no accounts: add at least one [[account]] table`},
		{"empty account array", "account = []\n", `config: no accounts`},
		{"missing login", "[[account]]\npassword_hash = \"" + hash + "\"\ncode = \"A\"\n", `config: account[1].login: is required`},
		{"missing password_hash", "[[account]]\nlogin = \"a\"\ncode = \"A\"\n", `config: account[1].password_hash: is required: run ` + "`smsdrop passwd`"},
		{"plain password", "[[account]]\nlogin = \"a\"\npassword_hash = \"demo\"\ncode = \"A\"\n", `account[1].password_hash: is not a bcrypt hash`},
		{"truncated hash", "[[account]]\nlogin = \"a\"\npassword_hash = \"" + hash[:59] + "\"\ncode = \"A\"\n", `account[1].password_hash: is not a bcrypt hash`},
		{"padded hash", "[[account]]\nlogin = \"a\"\npassword_hash = \"" + hash + "x\"\ncode = \"A\"\n", `account[1].password_hash: is not a bcrypt hash`},
		{"hash with bad cost", "[[account]]\nlogin = \"a\"\npassword_hash = \"$2a$99$" + hash[7:] + "\"\ncode = \"A\"\n", `account[1].password_hash: is not a bcrypt hash`},
		{"hash with bad alphabet", "[[account]]\nlogin = \"a\"\npassword_hash = \"" + hash[:59] + "!\"\ncode = \"A\"\n", `account[1].password_hash: is not a bcrypt hash`},
		{"missing code", "[[account]]\nlogin = \"a\"\npassword_hash = \"" + hash + "\"\n", `config: account[1].code: is required`},
		{"blank code", "[[account]]\nlogin = \"a\"\npassword_hash = \"" + hash + "\"\ncode = \"  \"\n", `account[1].code: is required`},
		{"duplicate login ignoring case", validAccount + strings.Replace(validAccount, `"a"`, `"A"`, 1), `config: account[2].login: "A" is already the login of account[1]`},
		{"login with slash", strings.Replace(validAccount, `"a"`, `"a/b"`, 1), `account[1].login: "a/b" contains '/'`},
		{"login with space", strings.Replace(validAccount, `"a"`, `"a b"`, 1), `account[1].login: "a b" contains ' '`},
		{"login with non-ASCII", strings.Replace(validAccount, `"a"`, `"café"`, 1), `account[1].login: "café" contains 'é'`},
		{"login dot-dot", strings.Replace(validAccount, `"a"`, `".."`, 1), `account[1].login: ".." starts with '.'`},
		{"login hidden", strings.Replace(validAccount, `"a"`, `".a"`, 1), `account[1].login: ".a" starts with '.'`},
		{"login too long", strings.Replace(validAccount, `"a"`, `"`+strings.Repeat("x", 65)+`"`, 1), `is longer than 64 characters`},
		{"unknown country", validAccount + "country = \"XX\"\n", `config: account[1].country: unknown country "XX": use an ISO 3166 alpha-2 code`},
		{"country name", validAccount + "country = \"France\"\n", `account[1].country: unknown country "France"`},
		{"empty country", validAccount + "country = \"\"\n", `account[1].country: unknown country ""`},
		{"non-geographic region", validAccount + "country = \"001\"\n", `account[1].country: unknown country "001"`},
		{"unknown timezone", validAccount + "timezone = \"Mars/Olympus\"\n", `config: account[1].timezone: unknown time zone "Mars/Olympus": use an IANA name`},
		{"empty timezone", validAccount + "timezone = \"\"\n", `account[1].timezone: unknown time zone ""`},
		{"bad charset", validAccount + "charset = \"utf8\"\n", `config: account[1].charset: invalid value "utf8": use "gsm", "unicode" or "auto"`},
		{"max_segments zero", validAccount + "max_segments = 0\n", `config: account[1].max_segments: 0 is out of range: use 1 to 255`},
		{"max_segments 256", validAccount + "max_segments = 256\n", `account[1].max_segments: 256 is out of range: use 1 to 255`},
		{"max_recipients zero", validAccount + "max_recipients = 0\n", `account[1].max_recipients: 0 is out of range: use at least 1`},
		{"max_file_size zero", validAccount + "max_file_size = 0\n", `account[1].max_file_size: size must be more than 0`},
		{"max_file_size negative", validAccount + "max_file_size = -1\n", `account[1].max_file_size: negative size -1`},
		{"max_file_size bad unit", validAccount + "max_file_size = \"10M\"\n", `account[1].max_file_size: invalid size "10M"`},
		{"max_file_size float", validAccount + "max_file_size = 1.5\n", `account[1].max_file_size: want bytes as an integer or a size in quotes like "10MiB", not the number 1.5`},
		{"quota negative", validAccount + "quota = -5\n", `account[1].quota: negative size -5`},
		{"sender_id too long", validAccount + "sender_id = \"ACME Company\"\n", `config: account[1].sender_id: "ACME Company" is longer than 11 characters`},
		{"sender_id punctuation", validAccount + "sender_id = \"ACME!\"\n", `account[1].sender_id: "ACME!" contains '!'`},
		{"sender_id accent", validAccount + "sender_id = \"Café\"\n", `account[1].sender_id: "Café" contains 'é'`},
		{"sender_id number too long", validAccount + "sender_id = \"+1234567890123456\"\n", `account[1].sender_id: "+1234567890123456" has more than 15 digits`},
		{"sender_id plus letters", validAccount + "sender_id = \"+ACME\"\n", `account[1].sender_id: "+ACME": a numeric sender_id`},
		{"sender_id trailing space", validAccount + "sender_id = \"ACME \"\n", `account[1].sender_id: "ACME " starts or ends with a space`},
		{"account negative rate", validAccount + "rate = -0.5\n", `config: account[1].rate: invalid rate -0.5`},
		{"bad CIDR", validAccount + "allow_ips = [\"10.0.0.0/33\"]\n", `config: account[1].allow_ips: invalid CIDR "10.0.0.0/33"`},
		{"bad IP", validAccount + "allow_ips = [\"10.0.0.256\"]\n", `account[1].allow_ips: invalid address "10.0.0.256"`},
		{"hostname in allow_ips", validAccount + "allow_ips = [\"example.com\"]\n", `account[1].allow_ips: invalid address "example.com"`},
		{"zoned IP", validAccount + "allow_ips = [\"fe80::1%eth0\"]\n", `account[1].allow_ips: invalid address "fe80::1%eth0"`},
		{"tls_required without cert", validAccount + "tls_required = true\n", `config: account[1].tls_required: needs ftp.tls_cert and ftp.tls_key`},
		{"negative dedupe_window", validAccount + "dedupe_window = \"-1h\"\n", `account[1].dedupe_window: negative duration`},
		{"bad max_schedule_ahead", validAccount + "max_schedule_ahead = \"1y\"\n", `account[1].max_schedule_ahead: invalid duration "1y"`},
		{"second account counted", validAccount + strings.Replace(validAccount, `"a"`, `"b"`, 1) + "charset = \"x\"\n", `account[2].charset`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q; got %+v", tt.want, c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte("[sender]\ndriver = \"x\"\nrate = -1\n" + validAccount + "charset = \"y\"\n"))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 problems, one a line, got:\n%v", err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "config: ") {
			t.Errorf("line %q does not start with \"config: \"", l)
		}
	}
}

func TestDecodeErrorsKeepTOMLError(t *testing.T) {
	tests := []struct {
		name, toml string
	}{
		{"unknown key", "nope = 1\n" + validAccount},
		{"wrong type", "data_dir = 1\n" + validAccount},
		{"syntax", "data_dir = = 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.toml))
			var de *toml.DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error %v does not wrap a *toml.DecodeError", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[ftp]\nlisen = \"x\"\n"+validAccount+"charset = \"z\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{"missing file", filepath.Join(dir, "none.toml"), []string{"config: ", "none.toml", "no such file"}},
		{"invalid file", bad, []string{"config: " + bad + `: unknown key "ftp.lisen" (line 2)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	// Validation errors, not only decode errors, name the file.
	if err := os.WriteFile(bad, []byte(validAccount+"charset = \"z\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "config: "+bad+": account[1].charset") {
		t.Errorf("Load error %v does not name the file and key", err)
	}
}

func TestBatchSettings(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	a := &c.Accounts[0]
	got := a.BatchSettings()
	want := batch.Settings{
		Code:                     "ACME",
		Country:                  "FR",
		International:            true,
		Location:                 a.Location,
		Charset:                  batch.CharsetAuto,
		MaxSegments:              10,
		MaxRecipients:            50000,
		MaxFileSize:              1 << 20,
		MaxScheduleAhead:         720 * time.Hour,
		RejectFileOnBadRecipient: true,
	}
	// Settings holds funcs, which reflect.DeepEqual only equates when nil.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BatchSettings:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"512", 512, false},
		{"512B", 512, false},
		{"1KB", 1000, false},
		{"1KiB", 1024, false},
		{"512KiB", 512 << 10, false},
		{"10MiB", 10 << 20, false},
		{"10MB", 10_000_000, false},
		{"1GB", 1_000_000_000, false},
		{"1GiB", 1 << 30, false},
		{"2TB", 2_000_000_000_000, false},
		{"2TiB", 2 << 40, false},
		{"10 mib", 10 << 20, false},
		{" 10MiB ", 10 << 20, false},
		{"8388607TiB", 8388607 << 40, false},
		{"8388608TiB", 0, true}, // overflows int64
		{"9223372036854775807", math.MaxInt64, false},
		{"9223372036854775808", 0, true},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"1.5GiB", 0, true},
		{"10M", 0, true},
		{"10K", 0, true},
		{"10 XB", 0, true},
		{"1_000", 0, true},
		{"0x10", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSize(%q) = %d, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
