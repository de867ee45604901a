// Package ftpd is smsdrop's FTP server: it adapts ftpserverlib to smsdrop's
// accounts and folders (SPEC §5, §12).
//
// Every account is chrooted in its own directory. Users may list, download
// and delete everywhere, but upload and rename only in the inbox (the
// account's top folder), never create folders, never change permissions or
// times. Uploads are written under a hidden temporary name and only get
// their real name once the transfer ended cleanly, so the rest of smsdrop
// never sees half a file. Logins are bcrypt-checked, repeated failures ban
// the address, and connection counts are capped.
package ftpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"
	"golang.org/x/crypto/bcrypt"

	"smsdrop/clock"
)

// Account is one FTP user and the directory it is confined to.
type Account struct {
	// Login is the FTP user name, compared exactly.
	Login string
	// PasswordHash is the bcrypt hash of the password.
	PasswordHash string
	// Dir is the absolute host directory of the account
	// (<data_dir>/accounts/<login>), already created with its sub-folders.
	Dir string
	// TLSRequired refuses logins over a clear control connection and makes
	// protected data connections (PROT P) mandatory once logged in.
	TLSRequired bool
	// AllowNets lists the networks the account may log in from; empty means
	// any address.
	AllowNets []netip.Prefix
	// Quota caps the bytes used by the whole account directory; 0 means no
	// quota.
	Quota int64
	// MaxFileSize is the account's max_file_size; 0 means no limit. An
	// upload keeps at most one byte more and reads the rest without
	// storing it, so that the gateway rejects the file with a report.
	MaxFileSize int64
}

// Config is everything the FTP server needs; the gateway maps its TOML
// configuration onto it.
type Config struct {
	// Listen is the control connection address, e.g. "127.0.0.1:2121".
	Listen string
	// PublicHost is the IPv4 address announced for passive connections; ""
	// lets the library use the control connection's local address.
	PublicHost string
	// PassiveStart and PassiveEnd bound the passive data ports; 0, 0 means
	// any free port.
	PassiveStart, PassiveEnd int
	// TLSCert and TLSKey are PEM files; when set, explicit FTPS (AUTH TLS)
	// is offered.
	TLSCert, TLSKey string
	// TLSImplicit makes the control port speak TLS from the first byte.
	TLSImplicit bool
	// IdleTimeout closes control connections idle for that long; 0 means
	// the library's default (900 s).
	IdleTimeout time.Duration
	// MaxConnections caps simultaneous control connections; 0 means
	// unlimited.
	MaxConnections int
	// MaxConnectionsPerIP caps simultaneous control connections from one
	// address; 0 means unlimited.
	MaxConnectionsPerIP int
	// MaxLoginFailures failed logins from one address are tolerated within
	// LoginFailureWindow; the next one bans the address for BanTime. 0
	// disables bans.
	MaxLoginFailures   int
	LoginFailureWindow time.Duration
	BanTime            time.Duration
	// Accounts are the FTP users.
	Accounts []Account
	// OnUpload is called, synchronously and as soon as a transfer has been
	// given its real name, with the account login and the file name in the
	// inbox. It is also called after a successful rename inside the inbox,
	// with the new name. It is called for every name, including ones the
	// gateway ignores (".tmp", ".part", ".filepart", "~"): the receiver
	// applies its own ignore rules. It must not block long: the client's
	// "226" reply waits for it. May be nil.
	OnUpload func(login, name string)
	// LockInboxNames, when set, is held while an upload or a rename puts a
	// file under a name in login's inbox, replacing any file there, and
	// while a rename or a DELE takes a file away (with InboxBusy): the
	// gateway opens inbox files and moves processed ones out under the same
	// locks, so that it never moves a file that replaced the one it
	// processed. A rename passes its source and target at once. It returns
	// the unlock function.
	LockInboxNames func(login string, names ...string) (unlock func())
	// BeforePublish, when set, is called with the login and the inbox
	// name under LockInboxNames, before an upload or a rename gives a file
	// that name: the gateway moves the name's previous results aside then,
	// before the file can be processed or the client told. It must not
	// block long. May be nil.
	BeforePublish func(login, name string)
	// InboxBusy, when set, reports whether the gateway is processing
	// inbox file name; it is asked under LockInboxNames. Such a file is
	// not renamed or deleted: renamed, it would be processed twice; deleted,
	// it would be sent all the same. May be nil.
	InboxBusy func(login, name string) bool
	// OnDelete is called after a successful DELE with the login and the
	// slash path relative to the account root (e.g. "scheduled/12_sms.txt"),
	// so the gateway can cancel. May be nil.
	OnDelete func(login, rel string)
	// OnLogin is called for every login attempt with its outcome ("ok",
	// "bad_password", "unknown_user", "banned", "ip_not_allowed",
	// "tls_required"), for metrics. A connection refused because its
	// address is banned counts as a "banned" attempt. May be nil.
	OnLogin func(outcome string)
	// OnBan is called when an address gets banned; may be nil.
	OnBan func(ip netip.Addr)
	// Logger receives the server's logs; ftpserverlib's own messages are
	// demoted to debug. nil discards everything.
	Logger *slog.Logger
	// Clock times login failures and bans; nil means the wall clock.
	Clock clock.Clock
}

// Login outcomes passed to Config.OnLogin.
const (
	OutcomeOK           = "ok"
	OutcomeBadPassword  = "bad_password"
	OutcomeUnknownUser  = "unknown_user"
	OutcomeBanned       = "banned"
	OutcomeIPNotAllowed = "ip_not_allowed"
	OutcomeTLSRequired  = "tls_required"
)

// Server is a running (or startable) FTP server.
type Server struct {
	cfg       Config
	log       *slog.Logger
	clk       clock.Clock
	accounts  map[string]*account
	dummyHash []byte
	// compareHash is bcrypt.CompareHashAndPassword; tests count its calls.
	compareHash func(hash, pw []byte) error
	tlsConfig   *tls.Config
	settings    *ftpserver.Settings
	ftp         *ftpserver.FtpServer
	guard       *guard

	mu        sync.Mutex
	started   bool
	stopping  bool
	listener  *guardListener
	clients   map[uint32]struct{}
	serveDone chan struct{}
	// active counts the work Stop must wait for: connected clients,
	// uploads still open and connections being refused.
	active sync.WaitGroup
	// copyBufs are the uploads' copy buffers, reused across uploads.
	copyBufs sync.Pool
}

// New checks cfg and prepares a server; nothing listens until Start.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		return nil, errors.New("ftpd: listen address is empty")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if err := checkLimits(&cfg); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		clk:      cfg.Clock,
		accounts: make(map[string]*account, len(cfg.Accounts)),
		clients:  make(map[uint32]struct{}),
	}
	cost := 0
	for i, a := range cfg.Accounts {
		acct, err := newAccount(a)
		if err != nil {
			return nil, fmt.Errorf("ftpd: account %d (%q): %w", i+1, a.Login, err)
		}
		if _, dup := s.accounts[a.Login]; dup {
			return nil, fmt.Errorf("ftpd: account %q is defined twice", a.Login)
		}
		s.accounts[a.Login] = acct
		if c, _ := bcrypt.Cost([]byte(a.PasswordHash)); c > cost {
			cost = c
		}
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	// Unknown users are checked against this hash, as costly as the
	// dearest account's, so that they take as long as a wrong password and
	// do not reveal which logins exist.
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		return nil, fmt.Errorf("ftpd: dummy password hash: %w", err)
	}
	s.dummyHash = dummy
	s.compareHash = bcrypt.CompareHashAndPassword
	if err := s.loadTLS(); err != nil {
		return nil, err
	}
	s.settings = s.buildSettings()
	s.guard = newGuard(cfg, s.clk)
	s.ftp = ftpserver.NewFtpServer(&mainDriver{s: s})
	s.ftp.Logger = slog.New(demoteHandler{h: cfg.Logger.Handler()}).With("component", "ftpserverlib")
	if !syncUploads {
		s.log.Error("this build does not fsync uploads before their 226 (built with -tags smsdrop_nosync, for benchmarks only): an acknowledged file can be lost in a power cut")
	}
	return s, nil
}

func checkLimits(cfg *Config) error {
	switch {
	case cfg.PassiveStart < 0 || cfg.PassiveEnd < 0 || cfg.PassiveStart > 65535 || cfg.PassiveEnd > 65535:
		return fmt.Errorf("ftpd: passive ports %d-%d out of range", cfg.PassiveStart, cfg.PassiveEnd)
	case (cfg.PassiveStart == 0) != (cfg.PassiveEnd == 0) || cfg.PassiveStart > cfg.PassiveEnd:
		return fmt.Errorf("ftpd: invalid passive port range %d-%d", cfg.PassiveStart, cfg.PassiveEnd)
	case cfg.IdleTimeout < 0:
		return errors.New("ftpd: negative idle timeout")
	case cfg.MaxConnections < 0 || cfg.MaxConnectionsPerIP < 0:
		return errors.New("ftpd: negative connection limit")
	case cfg.MaxLoginFailures < 0:
		return errors.New("ftpd: negative max login failures")
	case cfg.MaxLoginFailures > 0 && (cfg.LoginFailureWindow <= 0 || cfg.BanTime <= 0):
		return errors.New("ftpd: login failure window and ban time must be positive when bans are enabled")
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return errors.New("ftpd: TLS needs both a certificate and a key")
	case cfg.TLSImplicit && cfg.TLSCert == "":
		return errors.New("ftpd: implicit TLS needs a certificate and a key")
	}
	if cfg.PublicHost != "" {
		// The library only announces IPv4 addresses in PASV replies.
		ip, err := netip.ParseAddr(cfg.PublicHost)
		if err != nil || !ip.Is4() {
			return fmt.Errorf("ftpd: public host %q is not an IPv4 address", cfg.PublicHost)
		}
	}
	return nil
}

func newAccount(a Account) (*account, error) {
	if a.Login == "" {
		return nil, errors.New("empty login")
	}
	if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
		return nil, fmt.Errorf("password hash: %w", err)
	}
	if !filepath.IsAbs(a.Dir) {
		return nil, fmt.Errorf("directory %q is not absolute", a.Dir)
	}
	fi, err := os.Stat(a.Dir)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", a.Dir)
	}
	if a.Quota < 0 || a.MaxFileSize < 0 {
		return nil, errors.New("negative quota or max file size")
	}
	for _, p := range a.AllowNets {
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid network %v", p)
		}
	}
	base := afero.NewBasePathFs(diskFs(), a.Dir)
	lstat, ok := base.(afero.Lstater)
	if !ok {
		return nil, errors.New("afero.BasePathFs cannot Lstat, symlinks could not be refused")
	}
	return &account{Account: a, fs: base, lstat: lstat}, nil
}

func (s *Server) loadTLS() error {
	if s.cfg.TLSCert == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	if err != nil {
		return fmt.Errorf("ftpd: TLS certificate: %w", err)
	}
	// One config for the server's lifetime: its session ticket keys are what
	// lets a data connection resume the control connection's TLS session.
	s.tlsConfig = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	return nil
}

func (s *Server) buildSettings() *ftpserver.Settings {
	st := &ftpserver.Settings{
		ListenAddr:          s.cfg.Listen,
		PublicHost:          s.cfg.PublicHost,
		Banner:              "smsdrop FTP server",
		DefaultTransferType: ftpserver.TransferTypeBinary,
		DisableSite:         true,
		DisableMFMT:         true,
		// Binding port 20 needs root; active mode works from any port.
		ActiveTransferPortNon20: true,
	}
	if s.cfg.IdleTimeout > 0 {
		st.IdleTimeout = int((s.cfg.IdleTimeout + time.Second - 1) / time.Second)
	}
	if s.cfg.PassiveStart != 0 {
		st.PassiveTransferPortRange = ftpserver.PortRange{Start: s.cfg.PassiveStart, End: s.cfg.PassiveEnd}
		// Each passive port is reserved for the control connection's
		// address, and a data connection from any other address is
		// closed. Without it the library checked the address, answered
		// 425, and kept the stranger's connection for the client's next
		// transfer: anyone reaching the passive ports could read a
		// download or write an upload (found by review). The library
		// multiplexes only within a port range; Config.PassiveStart 0
		// (any port, tests only: the configuration always has a range)
		// goes without.
		st.PassiveTransferPortMultiplexing = true
	}
	if s.cfg.TLSImplicit {
		st.TLSRequired = ftpserver.ImplicitEncryption
	}
	return st
}

// Start listens on Config.Listen and serves in the background; it returns
// once the listener is ready.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("ftpd: server already started")
	}
	for _, a := range s.accounts {
		s.removeStaleUploads(a)
	}
	var lc net.ListenConfig
	inner, err := lc.Listen(context.Background(), "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("ftpd: listen: %w", err)
	}
	// Our own listener, not the library's, so that refused connections get
	// a proper "421" before the library sees them.
	gl := &guardListener{Listener: inner, s: s}
	s.settings.Listener = gl
	s.settings.ListenAddr = inner.Addr().String()
	if err := s.ftp.Listen(); err != nil {
		_ = inner.Close()
		return fmt.Errorf("ftpd: %w", err)
	}
	s.listener = gl
	s.started = true
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		if err := s.ftp.Serve(); err != nil {
			s.log.Error("ftp server stopped accepting", "err", err)
		}
	}()
	s.log.Info("ftp server listening", "addr", s.listener.Addr().String(),
		"tls", s.tlsConfig != nil, "tls_implicit", s.cfg.TLSImplicit, "accounts", len(s.accounts))
	return nil
}

// removeStaleUploads deletes the temporary files of uploads cut short by a
// crash: no transfer can be running before Start.
func (s *Server) removeStaleUploads(a *account) {
	entries, err := os.ReadDir(a.Dir)
	if err != nil {
		s.log.Warn("ftp: cannot scan inbox for stale uploads", "login", a.Login, "err", err)
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !isTempName(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(a.Dir, e.Name())); err != nil {
			s.log.Warn("ftp: stale upload not removed", "login", a.Login, "name", e.Name(), "err", err)
			continue
		}
		s.log.Info("ftp: stale upload removed", "login", a.Login, "name", e.Name())
	}
}

// Addr returns the actual listen address (host:port), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Stop stops accepting, closes every connection and waits until the uploads
// in progress have been cleaned up. It may be called more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	if !s.started || s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	s.mu.Unlock()

	var errStop error
	if err := s.ftp.Stop(); err != nil && !errors.Is(err, ftpserver.ErrNotListening) {
		errStop = fmt.Errorf("ftpd: stop: %w", err)
	}
	<-s.serveDone
	// Closing the sockets makes every client handler end; an upload in
	// progress sees its data connection fail and removes its temporary file.
	s.guard.closeAll()
	s.active.Wait()
	s.log.Info("ftp server stopped")
	return errStop
}

// admitClient registers a client handler unless the server is stopping.
func (s *Server) admitClient(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.clients[id] = struct{}{}
	s.active.Add(1)
	return true
}

func (s *Server) releaseClient(id uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; ok {
		delete(s.clients, id)
		s.active.Done()
	}
}

// beginWork counts a piece of work Stop must wait for, unless stopping.
func (s *Server) beginWork() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.active.Add(1)
	return true
}

func (s *Server) onLogin(outcome string) {
	if s.cfg.OnLogin != nil {
		s.cfg.OnLogin(outcome)
	}
}

// remoteIP extracts the client's address, IPv4-mapped addresses unmapped so
// they match IPv4 prefixes.
func remoteIP(addr net.Addr) netip.Addr {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
