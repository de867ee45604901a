// Package config reads smsdrop's TOML configuration file (SPEC §10) into
// typed settings, fills in the defaults and checks every value before the
// server starts, so a mistake is reported once, at start-up, naming the key.
//
// Decoding is strict: a key smsdrop does not know is an error, because a
// misspelt key silently falling back to its default is worse than refusing
// to start. Durations are Go duration strings ("90s", "15m", "72h"). Sizes
// are either a TOML integer (bytes) or a string read by ParseSize ("10MiB").
//
// Beyond SPEC §10 there is a [log] table: format ("text" or "json") and level
// ("debug", "info", "warn" or "error").
//
// Errors name the key as a dotted path; [[account]] entries are counted from
// 1 in file order, so "account[2].charset" is the charset of the second
// [[account]] table. Validation reports every problem it finds at once, one
// per line, so a broken file is fixed in one go rather than one error at a
// time.
//
// Relative paths (data_dir, tls_cert, tls_key, outbox) are kept relative:
// they resolve against the working directory of the process, like any path
// given on a command line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/pelletier/go-toml/v2"
	"golang.org/x/crypto/bcrypt"

	"smsdrop/batch"
)

// demoPasswordHash is the bcrypt hash of "demo" at bcrypt.DefaultCost. It is
// precomputed so Default is cheap and returns the same value every time;
// config.example.toml carries the same hash.
const demoPasswordHash = "$2a$10$95lW40rVVfywUfCO6ZsXMeE/EaZJ6KbbfyL5TGjB7VGSHb1PMlYEe"

// outboxName is the sim driver's outbox file inside data_dir when outbox is
// not set.
const outboxName = "sim-outbox.jsonl"

// Limits that come from outside smsdrop rather than from taste.
const (
	// maxSegmentsLimit is what the one-byte part count of a concatenation
	// UDH can express.
	maxSegmentsLimit = 255
	// maxLoginLen keeps a login, which becomes a directory name, well below
	// file-system name limits.
	maxLoginLen = 64
	// maxAlphaSenderID and maxNumericSenderID are the GSM limits of an
	// alphanumeric originator and of an E.164 number.
	maxAlphaSenderID   = 11
	maxNumericSenderID = 15
)

// Config is smsdrop's whole configuration, with defaults filled in and every
// value checked.
type Config struct {
	// DataDir holds the accounts' directories and the store (data_dir).
	DataDir string
	// Log configures the structured log ([log]).
	Log Log
	// FTP configures the FTP server ([ftp]).
	FTP FTP
	// HTTP configures the metrics and health endpoint ([http]).
	HTTP HTTP
	// Sender configures how messages reach a provider ([sender]).
	Sender Sender
	// Processing configures the watcher and housekeeping ([processing]).
	Processing Processing
	// Accounts are the FTP accounts ([[account]]), at least one.
	Accounts []Account
}

// Log configures log/slog output. It is an addition to SPEC §10.
type Log struct {
	// Format is "text" (default) or "json".
	Format string
	// Level is "debug", "info" (default), "warn" or "error".
	Level string
}

// FTP configures the FTP server.
type FTP struct {
	// Listen is the control connection's host:port, default "127.0.0.1:2121".
	Listen string
	// PublicHost is the address given in passive replies; empty means the
	// local IP of the control connection.
	PublicHost string
	// PassivePorts is the passive data port range as written, default
	// "30000-30100"; a single port is also accepted.
	PassivePorts string
	// PassiveStart and PassiveEnd are PassivePorts parsed, inclusive.
	PassiveStart, PassiveEnd int
	// TLSCert and TLSKey are PEM files; setting both enables explicit FTPS
	// (AUTH TLS).
	TLSCert, TLSKey string
	// TLSImplicit makes the listener speak TLS from the first byte.
	TLSImplicit bool
	// IdleTimeout closes a control connection idle this long, default 5m.
	IdleTimeout time.Duration
	// MaxConnections caps simultaneous control connections, default 100.
	MaxConnections int
	// MaxConnectionsPerIP caps them per client address, default 10.
	MaxConnectionsPerIP int
	// MaxLoginFailures from one address within LoginFailureWindow ban it
	// for BanTime; defaults 5, 10m and 15m.
	MaxLoginFailures   int
	LoginFailureWindow time.Duration
	BanTime            time.Duration
}

// HTTP configures the /metrics and /healthz endpoint.
type HTTP struct {
	// Listen is host:port; empty (the default) turns the endpoint off.
	Listen string
}

// Sender configures message hand-over.
type Sender struct {
	// Driver is "sim" (default) or "smpp".
	Driver string
	// Rate is the global limit in SMS parts per second, default 20; 0 means
	// unlimited.
	Rate float64
	// Validity is how long after its scheduled time a message is retried
	// before it becomes ko EXPIRED, default 24h.
	Validity time.Duration
	// ReceiptTimeout is how long a part waits for a delivery receipt before
	// its message becomes no, default 72h.
	ReceiptTimeout time.Duration
	// Sim configures the simulated provider ([sender.sim]).
	Sim SimSender
	// SMPP configures the SMPP client ([sender.smpp]).
	SMPP SMPPSender
}

// SimSender configures the embedded simulated provider.
type SimSender struct {
	// DeliveryDelay is how long a message stays on before its final
	// status, default 1s.
	DeliveryDelay time.Duration
	// Outbox is the JSON-lines file of handed-over messages; when the file
	// leaves it empty, Parse sets <data_dir>/sim-outbox.jsonl.
	Outbox string
}

// SMPPSender configures the SMPP 3.4 transceiver.
type SMPPSender struct {
	// Addr is the SMSC's host:port; required with driver "smpp".
	Addr string
	// SystemID and Password authenticate the bind; SystemID is required
	// with driver "smpp".
	SystemID, Password string
	// SystemType is sent in the bind, usually empty.
	SystemType string
	// SourceAddr is the originator for accounts without a sender_id.
	SourceAddr string
	// Window caps submit_sm requests awaiting their response, default 10.
	Window int
	// EnquireLink is the keep-alive interval, default 30s.
	EnquireLink time.Duration
}

// Processing configures file pick-up and housekeeping.
type Processing struct {
	// Settle is how long a file not uploaded through FTP must keep its size
	// and modification time before it is processed, default 2s.
	Settle time.Duration
	// Rescan is the interval of full directory scans, default 30s.
	Rescan time.Duration
	// Retention is how long finished batches are kept, default 720h.
	Retention time.Duration
	// OptoutKeywords are the replies that opt a number out, compared
	// ignoring case and surrounding spaces; default STOP, STOP SMS, ARRET,
	// UNSUBSCRIBE. An empty list turns opt-out by reply off.
	OptoutKeywords []string
}

// Account is one FTP account and the sending policy of its files.
type Account struct {
	// Login is the FTP user name and the directory name under
	// <data_dir>/accounts: letters, digits, '.', '_' and '-', not starting
	// with '.'. Logins are unique ignoring case.
	Login string
	// PasswordHash is a bcrypt hash (smsdrop passwd prints one).
	PasswordHash string
	// Code is what the files' U- line must say, ignoring case and
	// surrounding spaces.
	Code string
	// Country is the ISO 3166 alpha-2 region of national numbers, upper
	// case, default "GB".
	Country string
	// Timezone is the IANA name D- dates without an offset are read in,
	// default "UTC".
	Timezone string
	// Location is Timezone loaded.
	Location *time.Location
	// International allows numbers outside Country.
	International bool
	// Charset is gsm (default), unicode or auto.
	Charset batch.Charset
	// MaxSegments caps the parts of one message, 1 to 255, default 7.
	MaxSegments int
	// MaxRecipients caps the recipient lines of one file, default 2000.
	MaxRecipients int
	// MaxFileSize caps the bytes of one file, default 10 MiB.
	MaxFileSize int64
	// Quota caps the bytes stored in the account's directory; 0 means no
	// quota.
	Quota int64
	// SenderID is the approved originator: up to 11 letters, digits and
	// spaces, or a number of up to 15 digits with an optional leading '+'.
	// Empty uses the provider's or [sender.smpp] source_addr.
	SenderID string
	// Rate is the account's own limit in parts per second, on top of the
	// global one; 0 means only the global rate applies.
	Rate float64
	// AllowIPs are the client addresses allowed to log in, as written:
	// CIDRs or bare IPs. Empty allows any address.
	AllowIPs []string
	// AllowNets is AllowIPs parsed and masked; a bare IP is a /32 or /128.
	AllowNets []netip.Prefix
	// TLSRequired refuses a login before AUTH TLS.
	TLSRequired bool
	// RejectFileOnBadRecipient rejects a whole file for one bad recipient.
	RejectFileOnBadRecipient bool
	// DedupeWindow is how long identical bytes count as a duplicate of an
	// accepted file, default 24h; 0 turns duplicate detection off.
	DedupeWindow time.Duration
	// MaxScheduleAhead is how far in the future D- may be, default 8760h.
	MaxScheduleAhead time.Duration
}

// BatchSettings returns the parts of batch.Settings that come from the
// account. OptedOut, Now and Workers depend on the running server and are
// left for the caller.
func (a *Account) BatchSettings() batch.Settings {
	return batch.Settings{
		Code:                     a.Code,
		Country:                  a.Country,
		International:            a.International,
		Location:                 a.Location,
		Charset:                  a.Charset,
		MaxSegments:              a.MaxSegments,
		MaxRecipients:            a.MaxRecipients,
		MaxFileSize:              a.MaxFileSize,
		MaxScheduleAhead:         a.MaxScheduleAhead,
		RejectFileOnBadRecipient: a.RejectFileOnBadRecipient,
	}
}

// Default returns the embedded configuration smsdrop runs on without
// -config: the defaults of SPEC §10 and one account, login "demo", password
// "demo", code "DEMO". Each call returns a new value the caller may change.
func Default() *Config {
	c := defaultGlobals()
	c.Sender.Sim.Outbox = filepath.Join(c.DataDir, outboxName)
	a := defaultAccount()
	a.Login = "demo"
	a.PasswordHash = demoPasswordHash
	a.Code = "DEMO"
	c.Accounts = []Account{a}
	return c
}

// defaultGlobals is everything of Default but the accounts and the outbox,
// which depends on data_dir.
func defaultGlobals() *Config {
	return &Config{
		DataDir: "./data",
		Log:     Log{Format: "text", Level: "info"},
		FTP: FTP{
			Listen:              "127.0.0.1:2121",
			PassivePorts:        "30000-30100",
			PassiveStart:        30000,
			PassiveEnd:          30100,
			IdleTimeout:         5 * time.Minute,
			MaxConnections:      100,
			MaxConnectionsPerIP: 10,
			MaxLoginFailures:    5,
			LoginFailureWindow:  10 * time.Minute,
			BanTime:             15 * time.Minute,
		},
		Sender: Sender{
			Driver:         "sim",
			Rate:           20,
			Validity:       24 * time.Hour,
			ReceiptTimeout: 72 * time.Hour,
			Sim:            SimSender{DeliveryDelay: time.Second},
			SMPP:           SMPPSender{Window: 10, EnquireLink: 30 * time.Second},
		},
		Processing: Processing{
			Settle:         2 * time.Second,
			Rescan:         30 * time.Second,
			Retention:      720 * time.Hour,
			OptoutKeywords: []string{"STOP", "STOP SMS", "ARRET", "UNSUBSCRIBE"},
		},
	}
}

// defaultAccount holds the per-account defaults every [[account]] starts
// from.
func defaultAccount() Account {
	return Account{
		Country:          batch.DefaultCountry,
		Timezone:         "UTC",
		Location:         time.UTC,
		Charset:          batch.CharsetGSM,
		MaxSegments:      batch.DefaultMaxSegments,
		MaxRecipients:    batch.DefaultMaxRecipients,
		MaxFileSize:      batch.DefaultMaxFileSize,
		DedupeWindow:     24 * time.Hour,
		MaxScheduleAhead: batch.DefaultMaxScheduleAhead,
	}
}

// Load reads the TOML file at path and returns it parsed and checked. Errors
// name the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, "config: "+path)
}

// Parse decodes a TOML configuration strictly (unknown keys are errors),
// fills in the defaults and checks every value. When several values are
// wrong, the error lists each on its own line.
func Parse(data []byte) (*Config, error) {
	return parse(data, "config")
}

// parse is Parse with the prefix of every error message, so Load can name
// the file on each line of a multi-line error.
func parse(data []byte, prefix string) (*Config, error) {
	var raw rawConfig
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(prefix, err)
	}
	p := &parser{prefix: prefix}
	c := p.build(&raw)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

// The raw types mirror the TOML file. Pointers and any tell an absent key
// (keep the default) from a zero value; durations and sizes are any so a
// wrong type gets an error naming the key instead of go-toml's Go type names.
type (
	rawConfig struct {
		DataDir    *string       `toml:"data_dir"`
		Log        rawLog        `toml:"log"`
		FTP        rawFTP        `toml:"ftp"`
		HTTP       rawHTTP       `toml:"http"`
		Sender     rawSender     `toml:"sender"`
		Processing rawProcessing `toml:"processing"`
		Accounts   []rawAccount  `toml:"account"`
	}
	rawLog struct {
		Format *string `toml:"format"`
		Level  *string `toml:"level"`
	}
	rawFTP struct {
		Listen              *string `toml:"listen"`
		PublicHost          *string `toml:"public_host"`
		PassivePorts        *string `toml:"passive_ports"`
		TLSCert             *string `toml:"tls_cert"`
		TLSKey              *string `toml:"tls_key"`
		TLSImplicit         *bool   `toml:"tls_implicit"`
		IdleTimeout         any     `toml:"idle_timeout"`
		MaxConnections      *int64  `toml:"max_connections"`
		MaxConnectionsPerIP *int64  `toml:"max_connections_per_ip"`
		MaxLoginFailures    *int64  `toml:"max_login_failures"`
		LoginFailureWindow  any     `toml:"login_failure_window"`
		BanTime             any     `toml:"ban_time"`
	}
	rawHTTP struct {
		Listen *string `toml:"listen"`
	}
	rawSender struct {
		Driver         *string       `toml:"driver"`
		Rate           *float64      `toml:"rate"`
		Validity       any           `toml:"validity"`
		ReceiptTimeout any           `toml:"receipt_timeout"`
		Sim            rawSimSender  `toml:"sim"`
		SMPP           rawSMPPSender `toml:"smpp"`
	}
	rawSimSender struct {
		DeliveryDelay any     `toml:"delivery_delay"`
		Outbox        *string `toml:"outbox"`
	}
	rawSMPPSender struct {
		Addr        *string `toml:"addr"`
		SystemID    *string `toml:"system_id"`
		Password    *string `toml:"password"`
		SystemType  *string `toml:"system_type"`
		SourceAddr  *string `toml:"source_addr"`
		Window      *int64  `toml:"window"`
		EnquireLink any     `toml:"enquire_link"`
	}
	rawProcessing struct {
		Settle         any       `toml:"settle"`
		Rescan         any       `toml:"rescan"`
		Retention      any       `toml:"retention"`
		OptoutKeywords *[]string `toml:"optout_keywords"`
	}
	rawAccount struct {
		Login                    *string   `toml:"login"`
		PasswordHash             *string   `toml:"password_hash"`
		Code                     *string   `toml:"code"`
		Country                  *string   `toml:"country"`
		Timezone                 *string   `toml:"timezone"`
		International            *bool     `toml:"international"`
		Charset                  *string   `toml:"charset"`
		MaxSegments              *int64    `toml:"max_segments"`
		MaxRecipients            *int64    `toml:"max_recipients"`
		MaxFileSize              any       `toml:"max_file_size"`
		Quota                    any       `toml:"quota"`
		SenderID                 *string   `toml:"sender_id"`
		Rate                     *float64  `toml:"rate"`
		AllowIPs                 *[]string `toml:"allow_ips"`
		TLSRequired              *bool     `toml:"tls_required"`
		RejectFileOnBadRecipient *bool     `toml:"reject_file_on_bad_recipient"`
		DedupeWindow             any       `toml:"dedupe_window"`
		MaxScheduleAhead         any       `toml:"max_schedule_ahead"`
	}
)

// keyError is a decode error reworded for a user: its message names the key
// and line and says what to write, while the go-toml error stays reachable
// with errors.As.
type keyError struct {
	msg string
	err error
}

func (e *keyError) Error() string { return e.msg }
func (e *keyError) Unwrap() error { return e.err }

// decodeError turns a go-toml error into one that names the key and line.
func decodeError(prefix string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			errs = append(errs, &keyError{
				msg: fmt.Sprintf("%s: unknown key %q (line %d); see config.example.toml for the keys",
					prefix, strings.Join(de.Key(), "."), line),
				err: de,
			})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	line, col := de.Position()
	// go-toml reports a value of the wrong TOML type as "cannot decode
	// TOML <type> into struct field <Go type>" or "cannot store ..."; the
	// Go side means nothing to a user, so say what the key takes instead.
	if msg := de.Error(); strings.Contains(msg, "cannot decode") || strings.Contains(msg, "cannot store") {
		if key, want := expectedType(de.Key()); want != "" {
			return &keyError{
				msg: fmt.Sprintf("%s: %s (line %d): wrong type of value: use %s", prefix, key, line, want),
				err: de,
			}
		}
	}
	return fmt.Errorf("%s: line %d, column %d: invalid TOML: %w", prefix, line, col, err)
}

// expectedType follows key through the raw types and describes, for a user,
// what the deepest key it reaches takes. It returns that key and "" when the
// key leads nowhere.
func expectedType(key toml.Key) (string, string) {
	t := reflect.TypeFor[rawConfig]()
	var path []string
	var last reflect.Type
	for _, part := range key {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			break
		}
		f, ok := fieldByTag(t, part)
		if !ok {
			break
		}
		path = append(path, part)
		t, last = f.Type, f.Type
	}
	if last == nil {
		return "", ""
	}
	return strings.Join(path, "."), describeType(last)
}

// fieldByTag finds the field of struct type t decoded from TOML key name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tomlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// tomlName is the TOML key of a raw struct field.
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// describeType says in TOML terms what a raw field takes.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return `a string in quotes, like "text"`
	case reflect.Int64:
		return "an integer, like 10"
	case reflect.Float64:
		return "a number, like 20 or 2.5"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "[[table]] sections"
		}
		return `an array of strings, like ["a", "b"]`
	case reflect.Struct:
		return "a [table] section"
	default:
		return ""
	}
}

// parser collects every problem of a file so they are reported together.
type parser struct {
	prefix string
	errs   []error
}

// errorf records a problem with key.
func (p *parser) errorf(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s: %s", p.prefix, key, fmt.Sprintf(format, args...)))
}

// fail records a problem of the file as a whole.
func (p *parser) fail(msg string) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", p.prefix, msg))
}

// build applies raw over the defaults and checks the result.
func (p *parser) build(raw *rawConfig) *Config {
	c := defaultGlobals()

	setString(&c.DataDir, raw.DataDir)
	if c.DataDir == "" {
		p.errorf("data_dir", `must not be empty: use a directory such as "./data"`)
	}

	setString(&c.Log.Format, raw.Log.Format)
	p.oneOf("log.format", c.Log.Format, "text", "json")
	setString(&c.Log.Level, raw.Log.Level)
	p.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")

	p.buildFTP(&c.FTP, &raw.FTP)

	setString(&c.HTTP.Listen, raw.HTTP.Listen)
	if c.HTTP.Listen != "" {
		p.listenAddr("http.listen", c.HTTP.Listen, "127.0.0.1:9120")
		if c.HTTP.Listen == c.FTP.Listen {
			p.errorf("http.listen", "%q is also ftp.listen: give each its own port", c.HTTP.Listen)
		}
	}

	p.buildSender(&c.Sender, &raw.Sender)
	if c.Sender.Sim.Outbox == "" && c.DataDir != "" {
		c.Sender.Sim.Outbox = filepath.Join(c.DataDir, outboxName)
	}

	p.duration("processing.settle", raw.Processing.Settle, &c.Processing.Settle, false)
	p.duration("processing.rescan", raw.Processing.Rescan, &c.Processing.Rescan, true)
	p.duration("processing.retention", raw.Processing.Retention, &c.Processing.Retention, true)
	if raw.Processing.OptoutKeywords != nil {
		c.Processing.OptoutKeywords = nilIfEmpty(*raw.Processing.OptoutKeywords)
		for i, k := range c.Processing.OptoutKeywords {
			if strings.TrimSpace(k) == "" {
				p.errorf("processing.optout_keywords", "entry %d is blank: remove it", i+1)
			}
		}
	}

	p.buildAccounts(c, raw.Accounts)
	return c
}

// buildFTP applies and checks [ftp].
func (p *parser) buildFTP(f *FTP, raw *rawFTP) {
	setString(&f.Listen, raw.Listen)
	p.listenAddr("ftp.listen", f.Listen, "127.0.0.1:2121")
	setString(&f.PublicHost, raw.PublicHost)
	if f.PublicHost != "" {
		// PASV replies carry an IPv4 address, never a name.
		if ip, err := netip.ParseAddr(f.PublicHost); err != nil || !ip.Is4() {
			p.errorf("ftp.public_host", "%q is not an IPv4 address: give the address clients reach the server at, e.g. \"203.0.113.10\"", f.PublicHost)
		}
	}
	if raw.PassivePorts != nil {
		f.PassivePorts = *raw.PassivePorts
		start, end, err := parsePortRange(f.PassivePorts)
		if err != nil {
			p.errorf("ftp.passive_ports", "%v", err)
		}
		f.PassiveStart, f.PassiveEnd = start, end
	}
	setString(&f.TLSCert, raw.TLSCert)
	setString(&f.TLSKey, raw.TLSKey)
	setBool(&f.TLSImplicit, raw.TLSImplicit)
	switch {
	case f.TLSCert != "" && f.TLSKey == "":
		p.errorf("ftp.tls_cert", "is set without ftp.tls_key: set both, or neither to run without TLS")
	case f.TLSCert == "" && f.TLSKey != "":
		p.errorf("ftp.tls_key", "is set without ftp.tls_cert: set both, or neither to run without TLS")
	case f.TLSImplicit && f.TLSCert == "":
		p.errorf("ftp.tls_implicit", "needs ftp.tls_cert and ftp.tls_key")
	}
	p.duration("ftp.idle_timeout", raw.IdleTimeout, &f.IdleTimeout, true)
	p.intRange("ftp.max_connections", raw.MaxConnections, &f.MaxConnections, 1, math.MaxInt32)
	p.intRange("ftp.max_connections_per_ip", raw.MaxConnectionsPerIP, &f.MaxConnectionsPerIP, 1, math.MaxInt32)
	p.intRange("ftp.max_login_failures", raw.MaxLoginFailures, &f.MaxLoginFailures, 1, math.MaxInt32)
	p.duration("ftp.login_failure_window", raw.LoginFailureWindow, &f.LoginFailureWindow, true)
	p.duration("ftp.ban_time", raw.BanTime, &f.BanTime, true)
}

// buildSender applies and checks [sender] and its sub-tables.
func (p *parser) buildSender(s *Sender, raw *rawSender) {
	setString(&s.Driver, raw.Driver)
	p.oneOf("sender.driver", s.Driver, "sim", "smpp")
	p.rate("sender.rate", raw.Rate, &s.Rate, "0 means unlimited")
	p.duration("sender.validity", raw.Validity, &s.Validity, true)
	p.duration("sender.receipt_timeout", raw.ReceiptTimeout, &s.ReceiptTimeout, true)

	p.duration("sender.sim.delivery_delay", raw.Sim.DeliveryDelay, &s.Sim.DeliveryDelay, false)
	setString(&s.Sim.Outbox, raw.Sim.Outbox)

	m := &s.SMPP
	setString(&m.Addr, raw.SMPP.Addr)
	setString(&m.SystemID, raw.SMPP.SystemID)
	setString(&m.Password, raw.SMPP.Password)
	setString(&m.SystemType, raw.SMPP.SystemType)
	setString(&m.SourceAddr, raw.SMPP.SourceAddr)
	p.intRange("sender.smpp.window", raw.SMPP.Window, &m.Window, 1, math.MaxInt32)
	p.duration("sender.smpp.enquire_link", raw.SMPP.EnquireLink, &m.EnquireLink, true)
	// The SMPP settings only matter, and are only required, when the
	// driver uses them; a sim set-up may keep a half-filled [sender.smpp].
	if s.Driver == "smpp" {
		if m.Addr == "" {
			p.errorf("sender.smpp.addr", `is required with driver "smpp": give the SMSC's host:port`)
		} else if err := checkHostPort(m.Addr, false); err != nil {
			p.errorf("sender.smpp.addr", `%v: use host:port like "smsc.example.com:2775"`, err)
		}
		if m.SystemID == "" {
			p.errorf("sender.smpp.system_id", `is required with driver "smpp": give the system_id your provider assigned`)
		}
	}
}

// buildAccounts applies the per-account defaults to each [[account]] and
// checks each, then the accounts together.
func (p *parser) buildAccounts(c *Config, raws []rawAccount) {
	if len(raws) == 0 {
		p.fail("no accounts: add at least one [[account]] table (see config.example.toml)")
		return
	}
	logins := make(map[string]int, len(raws))
	c.Accounts = make([]Account, len(raws))
	for i := range raws {
		key := fmt.Sprintf("account[%d]", i+1)
		a := &c.Accounts[i]
		*a = defaultAccount()
		p.buildAccount(key, a, &raws[i], &c.FTP)
		if a.Login == "" {
			continue
		}
		// Logins name directories, and some file systems ignore case.
		folded := strings.ToLower(a.Login)
		if first, dup := logins[folded]; dup {
			p.errorf(key+".login", "%q is already the login of account[%d] (logins are compared ignoring case): choose another", a.Login, first)
			continue
		}
		logins[folded] = i + 1
	}
}

// buildAccount applies and checks one [[account]].
func (p *parser) buildAccount(key string, a *Account, raw *rawAccount, ftp *FTP) {
	setString(&a.Login, raw.Login)
	if err := checkLogin(a.Login); err != nil {
		p.errorf(key+".login", "%v", err)
	}

	setString(&a.PasswordHash, raw.PasswordHash)
	if a.PasswordHash == "" {
		p.errorf(key+".password_hash", "is required: run `smsdrop passwd` and paste the hash it prints")
	} else if !looksLikeBcrypt(a.PasswordHash) {
		p.errorf(key+".password_hash", "is not a bcrypt hash: run `smsdrop passwd` and paste the hash it prints")
	}

	setString(&a.Code, raw.Code)
	if strings.TrimSpace(a.Code) == "" {
		p.errorf(key+".code", "is required: give the account code the files' U- line carries")
	}

	if raw.Country != nil {
		// ISO codes are upper case by convention, but "gb" is unambiguous.
		a.Country = strings.ToUpper(*raw.Country)
		if !isRegion(a.Country) {
			p.errorf(key+".country", `unknown country %q: use an ISO 3166 alpha-2 code like "GB" or "FR"`, *raw.Country)
		}
	}

	if raw.Timezone != nil {
		a.Timezone = *raw.Timezone
		// time.LoadLocation reads "" as UTC; an empty value is more likely
		// a mistake than a wish, so it is refused.
		loc, err := time.LoadLocation(a.Timezone)
		if a.Timezone == "" || err != nil {
			p.errorf(key+".timezone", `unknown time zone %q: use an IANA name like "Europe/London" or "UTC"`, a.Timezone)
		} else {
			a.Location = loc
		}
	}

	setBool(&a.International, raw.International)

	if raw.Charset != nil {
		a.Charset = batch.Charset(*raw.Charset)
		p.oneOf(key+".charset", *raw.Charset, string(batch.CharsetGSM), string(batch.CharsetUnicode), string(batch.CharsetAuto))
	}

	p.intRange(key+".max_segments", raw.MaxSegments, &a.MaxSegments, 1, maxSegmentsLimit)
	p.intRange(key+".max_recipients", raw.MaxRecipients, &a.MaxRecipients, 1, math.MaxInt32)
	p.size(key+".max_file_size", raw.MaxFileSize, &a.MaxFileSize, true)
	p.size(key+".quota", raw.Quota, &a.Quota, false)

	setString(&a.SenderID, raw.SenderID)
	if err := checkSenderID(a.SenderID); err != nil {
		p.errorf(key+".sender_id", "%v", err)
	}

	p.rate(key+".rate", raw.Rate, &a.Rate, "0 means only the global sender.rate applies")

	if raw.AllowIPs != nil {
		a.AllowIPs = nilIfEmpty(*raw.AllowIPs)
		for _, s := range a.AllowIPs {
			n, err := parseAllow(s)
			if err != nil {
				p.errorf(key+".allow_ips", "%v", err)
				continue
			}
			a.AllowNets = append(a.AllowNets, n)
		}
	}

	setBool(&a.TLSRequired, raw.TLSRequired)
	if a.TLSRequired && ftp.TLSCert == "" {
		p.errorf(key+".tls_required", "needs ftp.tls_cert and ftp.tls_key, or no client could log in")
	}
	setBool(&a.RejectFileOnBadRecipient, raw.RejectFileOnBadRecipient)
	p.duration(key+".dedupe_window", raw.DedupeWindow, &a.DedupeWindow, false)
	p.duration(key+".max_schedule_ahead", raw.MaxScheduleAhead, &a.MaxScheduleAhead, false)
}

// setString and setBool keep the default when the key is absent.
func setString(dst, v *string) {
	if v != nil {
		*dst = *v
	}
}

func setBool(dst, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// nilIfEmpty makes an empty TOML array nil, so a parsed file and Default
// agree on "none".
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// oneOf checks that v is one of the allowed values.
func (p *parser) oneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	last := len(quoted) - 1
	p.errorf(key, "invalid value %q: use %s or %s", v, strings.Join(quoted[:last], ", "), quoted[last])
}

// intRange sets dst from v, if present, when lo <= v <= hi.
func (p *parser) intRange(key string, v *int64, dst *int, lo, hi int64) {
	if v == nil {
		return
	}
	if *v < lo || *v > hi {
		if hi == math.MaxInt32 {
			p.errorf(key, "%d is out of range: use at least %d", *v, lo)
		} else {
			p.errorf(key, "%d is out of range: use %d to %d", *v, lo, hi)
		}
		return
	}
	*dst = int(*v)
}

// rate sets dst from v, if present, when it is a finite number >= 0. TOML
// allows nan and inf, which no limiter can use.
func (p *parser) rate(key string, v *float64, dst *float64, zero string) {
	if v == nil {
		return
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0 {
		p.errorf(key, "invalid rate %v: use parts per second, 0 or more (%s)", *v, zero)
		return
	}
	*dst = *v
}

// duration sets dst from v, if present, when it is a Go duration string that
// is not negative and, when positive is set, not zero either.
func (p *parser) duration(key string, v any, dst *time.Duration, positive bool) {
	if v == nil {
		return
	}
	s, ok := v.(string)
	if !ok {
		p.errorf(key, `want a duration in quotes, like "90s" or "72h", not %s`, describeValue(v))
		return
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.errorf(key, `invalid duration %q: use Go durations like "72h"`, s)
	case d < 0:
		p.errorf(key, "negative duration %q: use 0 or more", s)
	case positive && d == 0:
		p.errorf(key, `duration must be more than 0: use a Go duration like "30s"`)
	default:
		*dst = d
	}
}

// size sets dst from v, if present: a TOML integer of bytes or a string for
// ParseSize. With positive set, 0 is refused too.
func (p *parser) size(key string, v any, dst *int64, positive bool) {
	var n int64
	switch x := v.(type) {
	case nil:
		return
	case int64:
		n = x
	case string:
		var err error
		if n, err = ParseSize(x); err != nil {
			p.errorf(key, "%v", err)
			return
		}
	default:
		p.errorf(key, `want bytes as an integer or a size in quotes like "10MiB", not %s`, describeValue(v))
		return
	}
	switch {
	case n < 0:
		p.errorf(key, "negative size %d: use 0 or more", n)
	case positive && n == 0:
		p.errorf(key, `size must be more than 0: use bytes or a size like "10MiB"`)
	default:
		*dst = n
	}
}

// describeValue names a decoded TOML value for an error message.
func describeValue(v any) string {
	switch x := v.(type) {
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return fmt.Sprintf("the number %v", x)
	case bool:
		return fmt.Sprintf("%t", x)
	case string:
		return strconv.Quote(x)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// listenAddr checks a listening address; port 0 is allowed (any free port).
func (p *parser) listenAddr(key, addr, example string) {
	if err := checkHostPort(addr, true); err != nil {
		p.errorf(key, `%v: use host:port like %q, or ":port" for every interface`, err, example)
	}
}

// checkHostPort checks host:port with a numeric port, 0 allowed only for a
// listener.
func checkHostPort(addr string, listen bool) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || n == 0 && !listen {
		return fmt.Errorf("invalid port in %q", addr)
	}
	return nil
}

// parsePortRange reads "FIRST-LAST" or a single port.
func parsePortRange(s string) (int, int, error) {
	first, last, isRange := strings.Cut(s, "-")
	if !isRange {
		last = first
	}
	start, err1 := parsePort(first)
	end, err2 := parsePort(last)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf(`invalid port range %q: use "FIRST-LAST" like "30000-30100", ports 1 to 65535`, s)
	}
	if start > end {
		return 0, 0, fmt.Errorf("invalid port range %q: the first port is above the last", s)
	}
	return start, end, nil
}

// parsePort reads one port number, 1 to 65535, allowing spaces around it.
func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("parse port %q: %w", s, err)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range", n)
	}
	return n, nil
}

// checkLogin checks that a login is usable as a directory name on any file
// system and in an FTP USER command.
func checkLogin(login string) error {
	switch {
	case login == "":
		return errors.New("is required: give the FTP user name")
	case len(login) > maxLoginLen:
		return fmt.Errorf("%q is longer than %d characters", login, maxLoginLen)
	case login[0] == '.':
		return fmt.Errorf("%q starts with '.': logins become directory names, use a letter or digit first", login)
	}
	for _, r := range login {
		if !isASCIILetterOrDigit(r) && r != '.' && r != '_' && r != '-' {
			return fmt.Errorf("%q contains %q: use only letters, digits, '.', '_' and '-'", login, r)
		}
	}
	return nil
}

// looksLikeBcrypt reports whether s is a well-formed bcrypt hash. bcrypt.Cost
// checks the prefix and cost but accepts any trailing bytes, so the length
// and the alphabet of salt and hash are checked too: a truncated or padded
// hash would otherwise load fine and then refuse every login.
func looksLikeBcrypt(s string) bool {
	const hashLen = 60
	if len(s) != hashLen {
		return false
	}
	if _, err := bcrypt.Cost([]byte(s)); err != nil {
		return false
	}
	for _, r := range s[len("$2a$10$"):] {
		if !isASCIILetterOrDigit(r) && r != '.' && r != '/' {
			return false
		}
	}
	return true
}

// isRegion reports whether cc is a region phonenumbers can read national
// numbers in.
func isRegion(cc string) bool {
	if len(cc) != 2 || !isASCIIUpper(rune(cc[0])) || !isASCIIUpper(rune(cc[1])) {
		return false
	}
	return phonenumbers.GetCountryCodeForRegion(cc) != 0
}

// checkSenderID checks an originator against what GSM networks carry: an
// alphanumeric name of up to 11 characters, or a number of up to 15 digits.
// Only ASCII letters, digits and spaces are allowed in a name because other
// characters are mangled or refused by many networks.
func checkSenderID(id string) error {
	if id == "" {
		return nil
	}
	if digits, ok := strings.CutPrefix(id, "+"); ok || allDigits(id) {
		if !allDigits(digits) || digits == "" {
			return fmt.Errorf("%q: a numeric sender_id is '+' and digits only", id)
		}
		if len(digits) > maxNumericSenderID {
			return fmt.Errorf("%q has more than %d digits", id, maxNumericSenderID)
		}
		return nil
	}
	for _, r := range id {
		if !isASCIILetterOrDigit(r) && r != ' ' {
			return fmt.Errorf("%q contains %q: use only ASCII letters, digits and spaces", id, r)
		}
	}
	if len(id) > maxAlphaSenderID {
		return fmt.Errorf("%q is longer than %d characters: shorten it, or use a number of up to %d digits", id, maxAlphaSenderID, maxNumericSenderID)
	}
	if strings.TrimSpace(id) != id {
		return fmt.Errorf("%q starts or ends with a space, which networks drop: remove it", id)
	}
	return nil
}

// parseAllow reads a CIDR or a bare IP (a /32 or /128) of allow_ips.
func parseAllow(s string) (netip.Prefix, error) {
	const hint = `use a CIDR like "192.0.2.0/24" or an IP like "192.0.2.7"`
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %s", s, hint)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: %s", s, hint)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isASCIIUpper(r rune) bool { return r >= 'A' && r <= 'Z' }

func isASCIILetterOrDigit(r rune) bool {
	return isASCIIUpper(r) || r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
}

// sizeUnit returns the multiplier of a lower-cased ParseSize unit: decimal
// (SI) for KB, MB, GB, TB and binary (IEC) for KiB, MiB, GiB, TiB, as their
// names say.
func sizeUnit(unit string) (int64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kb":
		return 1000, true
	case "kib":
		return 1 << 10, true
	case "mb":
		return 1000 * 1000, true
	case "mib":
		return 1 << 20, true
	case "gb":
		return 1000 * 1000 * 1000, true
	case "gib":
		return 1 << 30, true
	case "tb":
		return 1000 * 1000 * 1000 * 1000, true
	case "tib":
		return 1 << 40, true
	default:
		return 0, false
	}
}

// ParseSize reads a byte size: a whole number followed by an optional unit,
// with or without a space between. Units ignore case: B; KB, MB, GB, TB are
// powers of 1000; KiB, MiB, GiB, TiB are powers of 1024. So "512" is 512
// bytes, "10MiB" is 10485760 and "1GB" is 1000000000. Fractions ("1.5GiB"),
// negative numbers and single-letter units ("10M", whose base is ambiguous)
// are refused.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	mult, known := sizeUnit(strings.ToLower(strings.TrimSpace(t[i:])))
	if i == 0 || !known {
		return 0, fmt.Errorf(`invalid size %q: use bytes, or a whole number with B, KB, KiB, MB, MiB, GB, GiB, TB or TiB, like "10MiB"`, s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}
