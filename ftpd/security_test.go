package ftpd

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
)

// dialFrom makes jlaffaye/ftp connect from a given loopback address, so one
// test can play several clients (Linux routes all of 127.0.0.0/8 to lo).
func dialFrom(ip string) ftp.DialOption {
	return ftp.DialWithDialer(net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}})
}

// requireLoopbackAlias skips when 127.0.0.2 cannot be used as a source.
func requireLoopbackAlias(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 unusable: %v", err)
	}
	_ = l.Close()
}

func TestBan(t *testing.T) {
	requireLoopbackAlias(t)
	e := startEnv(t, func(c *Config) {
		c.MaxLoginFailures = 2
		c.LoginFailureWindow = 10 * time.Minute
		c.BanTime = 15 * time.Minute
	})
	fail := func(from string) {
		t.Helper()
		c, err := e.dial(dialFrom(from))
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		defer func() { _ = c.Quit() }()
		if err := c.Login(userA, "wrong"); replyCode(err) != 530 {
			t.Fatalf("wrong password: %v", err)
		}
	}
	refused := func(from string) {
		t.Helper()
		c, err := e.dial(dialFrom(from))
		if err == nil {
			_ = c.Quit()
			t.Fatalf("connection from %s accepted while banned", from)
		}
		if replyCode(err) != 421 {
			t.Fatalf("banned connection: %v, want a 421 reply", err)
		}
	}

	// Two failures are tolerated; one of them leaves the window.
	fail("127.0.0.1")
	e.clk.Advance(11 * time.Minute)
	fail("127.0.0.1")
	e.login(userA, passA, dialFrom("127.0.0.1")) // still allowed
	// A connection opened before the ban, logging in after it.
	late, err := e.dial(dialFrom("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Quit() }()
	fail("127.0.0.1")
	fail("127.0.0.1") // the third failure within the window bans

	refused("127.0.0.1")
	if err := late.Login(userA, passA); replyCode(err) != 530 {
		t.Fatalf("login on a connection opened before the ban: %v", err)
	}
	refused("127.0.0.1") // that success-less attempt did not lift the ban
	// Another address is not affected.
	e.login(userA, passA, dialFrom("127.0.0.2"))

	e.clk.Advance(14 * time.Minute)
	refused("127.0.0.1")
	e.clk.Advance(time.Minute)
	e.login(userA, passA, dialFrom("127.0.0.1"))

	_, _, logins := e.rec.snapshot()
	want := []string{
		OutcomeBadPassword, OutcomeBadPassword, OutcomeOK, OutcomeBadPassword, OutcomeBadPassword,
		OutcomeBanned, OutcomeBanned, OutcomeBanned, OutcomeOK, OutcomeBanned, OutcomeOK,
	}
	if !slices.Equal(logins, want) {
		t.Fatalf("login outcomes %v, want %v", logins, want)
	}
	if !strings.Contains(e.logs.String(), "ftp address banned") {
		t.Fatal("ban not logged")
	}
}

func TestBanRefusesRightPassword(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.MaxLoginFailures = 1
		c.LoginFailureWindow = time.Minute
		c.BanTime = time.Hour
	})
	for range 2 {
		c, err := e.dial()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login("nobody", "x"); replyCode(err) != 530 {
			t.Fatalf("unknown user: %v", err)
		}
		_ = c.Quit()
	}
	// curl reports a 421 greeting as a timeout (exit 28); -v shows the reply.
	out, err := curl(t, "-v", fmt.Sprintf("ftp://%s:%s@%s/", userA, passA, e.addr))
	if err == nil || !strings.Contains(out, "< 421") {
		t.Fatalf("curl with the right password while banned: %v\n%s", err, out)
	}
}

func TestAllowNets(t *testing.T) {
	requireLoopbackAlias(t)
	e := startEnv(t, func(c *Config) {
		c.Accounts[0].AllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.0.0.0/8")}
	})
	c, err := e.dial(dialFrom("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Quit() }()
	if err := c.Login(userA, passA); replyCode(err) != 530 {
		t.Fatalf("login from a refused address: %v", err)
	}
	e.login(userA, passA, dialFrom("127.0.0.2"))
	e.login(userB, passB, dialFrom("127.0.0.1")) // no list: any address
	_, _, logins := e.rec.snapshot()
	if want := []string{OutcomeIPNotAllowed, OutcomeOK, OutcomeOK}; !slices.Equal(logins, want) {
		t.Fatalf("outcomes %v, want %v", logins, want)
	}
}

func TestConnectionLimits(t *testing.T) {
	requireLoopbackAlias(t)
	tests := []struct {
		name      string
		perIP     int
		total     int
		otherIPOK bool
	}{
		{"per address", 2, 0, true},
		{"total", 0, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, func(c *Config) {
				c.MaxConnectionsPerIP = tt.perIP
				c.MaxConnections = tt.total
			})
			first := e.login(userA, passA, dialFrom("127.0.0.1"))
			e.login(userA, passA, dialFrom("127.0.0.1"))
			if c, err := e.dial(dialFrom("127.0.0.1")); err == nil {
				_ = c.Quit()
				t.Fatal("third connection accepted")
			} else if replyCode(err) != 421 {
				t.Fatalf("third connection: %v, want 421", err)
			}
			c, err := e.dial(dialFrom("127.0.0.2"))
			if tt.otherIPOK != (err == nil) {
				t.Fatalf("connection from another address: %v", err)
			}
			if c != nil {
				_ = c.Quit()
			}
			// Closing one connection frees its slot, once the server has
			// seen it go.
			if err := first.Quit(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "a free slot", func() bool {
				c, err := e.dial(dialFrom("127.0.0.1"))
				if err != nil {
					return false
				}
				_ = c.Quit()
				return true
			})
		})
	}
}

func TestExplicitTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	e := startEnv(t, func(c *Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.Accounts[0].TLSRequired = true
	})
	var mu sync.Mutex
	var resumed []bool
	c := e.login(userA, passA, ftp.DialWithExplicitTLS(tlsClientConfig(pool, &resumed, &mu)))
	if err := c.Stor("tls.txt", strings.NewReader("over TLS")); err != nil {
		t.Fatalf("STOR over TLS: %v", err)
	}
	r, err := c.Retr("tls.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil || string(got) != "over TLS" {
		t.Fatalf("RETR over TLS: %q %v", got, err)
	}
	if _, err := c.List("/"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	handshakes := slices.Clone(resumed)
	mu.Unlock()
	// The control handshake is full; data connections resume its session.
	if len(handshakes) < 2 || handshakes[0] || !slices.Contains(handshakes[1:], true) {
		t.Fatalf("handshakes (resumed?) %v: data connections should resume the control session", handshakes)
	}

	if e.srv.tlsConfig.MinVersion != tls.VersionTLS12 {
		t.Fatalf("min TLS version %x", e.srv.tlsConfig.MinVersion)
	}
	old := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11}
	if oc, err := e.dial(ftp.DialWithExplicitTLS(old)); err == nil {
		err = oc.Login(userA, passA)
		_ = oc.Quit()
		if err == nil {
			t.Fatal("TLS 1.1 accepted")
		}
	}

	src := filepath.Join(t.TempDir(), "curl.txt")
	writeFile(t, src, "curl over TLS")
	out, err := curl(t, "--ssl-reqd", "-k", "-T", src, fmt.Sprintf("ftp://%s:%s@%s/", userA, passA, e.addr))
	if err != nil {
		t.Fatalf("curl --ssl-reqd: %v\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(e.dir(userA), "curl.txt")); got != "curl over TLS" {
		t.Fatalf("curl upload %q", got)
	}
	out, err = curl(t, "--ssl-reqd", "-k", "-Q", "SITE CHMOD 777 curl.txt", fmt.Sprintf("ftp://%s:%s@%s/", userA, passA, e.addr))
	if err == nil || !strings.Contains(out, "QUOT command failed") {
		t.Fatalf("curl SITE over TLS: %v\n%s", err, out)
	}
}

func TestTLSRequiredRefusesPlainLogin(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	e := startEnv(t, func(c *Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.Accounts[0].TLSRequired = true
	})
	raw := dialRaw(t, e.addr, "")
	if code, msg := raw.cmd("USER %s", userA); code != 530 {
		t.Fatalf("USER of a TLS-only account in clear: %d %s", code, msg)
	}
	c, err := e.dial()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(userA, passA); err == nil {
		t.Fatal("plain login to a TLS-only account accepted")
	}
	out, err := curl(t, fmt.Sprintf("ftp://%s:%s@%s/", userA, passA, e.addr))
	if err == nil {
		t.Fatalf("curl without TLS accepted:\n%s", out)
	}
	// The other account does not require TLS.
	e.login(userB, passB)
	var mu sync.Mutex
	var resumed []bool
	e.login(userA, passA, ftp.DialWithExplicitTLS(tlsClientConfig(pool, &resumed, &mu)))

	// With TLS on control only, transfers stay refused.
	tc := dialRaw(t, e.addr, "")
	if code, msg := tc.cmd("AUTH TLS"); code != 234 {
		t.Fatalf("AUTH TLS: %d %s", code, msg)
	}
	conn := tls.Client(tc.conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	tc.conn = conn
	tc.tp = textproto.NewConn(conn)
	tc.login(userA, passA)
	tc.openData()
	if code, msg := tc.cmd("NLST"); code < 400 {
		t.Fatalf("clear data connection for a TLS-only account: %d %s", code, msg)
	}

	_, _, logins := e.rec.snapshot()
	if want := []string{OutcomeTLSRequired, OutcomeTLSRequired, OutcomeTLSRequired, OutcomeOK, OutcomeOK, OutcomeOK}; !slices.Equal(logins, want) {
		t.Fatalf("outcomes %v, want %v", logins, want)
	}
}

func TestImplicitTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	e := startEnv(t, func(c *Config) {
		c.TLSCert, c.TLSKey, c.TLSImplicit = certFile, keyFile, true
	})
	var mu sync.Mutex
	var resumed []bool
	c := e.login(userA, passA, ftp.DialWithTLS(tlsClientConfig(pool, &resumed, &mu)))
	if err := c.Stor("implicit.txt", strings.NewReader("implicit")); err != nil {
		t.Fatalf("STOR: %v", err)
	}
	if got := readFile(t, filepath.Join(e.dir(userA), "implicit.txt")); got != "implicit" {
		t.Fatalf("content %q", got)
	}
	// A clear client gets no FTP greeting.
	pc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	_ = pc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := pc.Write([]byte("USER demo\r\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(pc); strings.HasPrefix(string(got), "220") {
		t.Fatalf("clear client greeted: %q", got)
	}
	src := filepath.Join(t.TempDir(), "curl.txt")
	writeFile(t, src, "curl implicit")
	out, err := curl(t, "-k", "-T", src, fmt.Sprintf("ftps://%s:%s@%s/", userA, passA, e.addr))
	if err != nil {
		t.Fatalf("curl ftps://: %v\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(e.dir(userA), "curl.txt")); got != "curl implicit" {
		t.Fatalf("curl upload %q", got)
	}
}

func TestImplicitTLSRefusalIsReadable(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	e := startEnv(t, func(c *Config) {
		c.TLSCert, c.TLSKey, c.TLSImplicit = certFile, keyFile, true
		c.MaxConnections = 1
	})
	var mu sync.Mutex
	var resumed []bool
	cfg := tlsClientConfig(pool, &resumed, &mu)
	e.login(userA, passA, ftp.DialWithTLS(cfg))
	_, err := e.dial(ftp.DialWithTLS(cfg))
	if replyCode(err) != 421 {
		t.Fatalf("second implicit TLS connection: %v, want 421", err)
	}
}

func TestStaleUploadsRemovedAtStart(t *testing.T) {
	cfg, _, _, _ := testConfig(t)
	inbox := cfg.Accounts[0].Dir
	stale := filepath.Join(inbox, TempName("crashed.txt"))
	writeFile(t, stale, "half a file")
	keep := filepath.Join(inbox, ".keep")
	writeFile(t, keep, "not ours")
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale upload still there: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("other hidden file removed: %v", err)
	}
}

func TestStopClosesConnections(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(userA, passA)
	if err := e.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.NoOp(); err == nil {
		t.Fatal("connection still usable after Stop")
	}
	if _, err := e.dial(); err == nil {
		t.Fatal("new connection accepted after Stop")
	}
	if err := e.srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := e.srv.Start(); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

func TestPassivePortRange(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	e := startEnv(t, func(c *Config) { c.PassiveStart, c.PassiveEnd = port, port })
	raw := dialRaw(t, e.addr, "")
	raw.login(userA, passA)
	code, msg := raw.cmd("EPSV")
	if code != 229 || !strings.Contains(msg, fmt.Sprintf("(|||%d|)", port)) {
		t.Fatalf("EPSV: %d %s, want port %d", code, msg, port)
	}
}

// Refusals that tell something about an account count as failed logins,
// so bans bound how often an address can ask (found by review):
//   - from an address outside allow_ips, the right password got its own
//     reply ("not allowed from this address"), the wrong one "login
//     incorrect": a password oracle for anyone, without limit. Both now get
//     the same reply.
//   - USER of a TLS-only account on a clear connection is refused (the
//     password must not follow in clear), which tells the login exists.
func TestRefusalsCountTowardsBans(t *testing.T) {
	requireLoopbackAlias(t)
	certFile, keyFile, _ := selfSigned(t)
	e := startEnv(t, func(c *Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.MaxLoginFailures = 2
		c.LoginFailureWindow = 10 * time.Minute
		c.BanTime = 15 * time.Minute
		c.Accounts[0].AllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		c.Accounts[1].TLSRequired = true
	})
	reply := func(pass string) string {
		t.Helper()
		r := dialRaw(t, e.addr, "127.0.0.1")
		r.cmd("USER %s", userA)
		code, msg := r.cmd("PASS %s", pass)
		if code != 530 {
			t.Fatalf("PASS from a refused address: %d %s", code, msg)
		}
		return msg
	}
	if right, wrong := reply(passA), reply("wrong"); right != wrong {
		t.Errorf("from a refused address the right password gets %q, a wrong one %q", right, wrong)
	}
	// Third refusal within the window: banned.
	r := dialRaw(t, e.addr, "127.0.0.1")
	if code, msg := r.cmd("USER %s", userB); code != 530 {
		t.Fatalf("USER of a TLS-only account in clear: %d %s", code, msg)
	}
	if _, err := e.dial(dialFrom("127.0.0.1")); replyCode(err) != 421 {
		t.Fatalf("after three refusals: %v, want banned (421)", err)
	}
	e.login(userA, passA, dialFrom("127.0.0.2")) // the allowed address is not affected
	_, _, logins := e.rec.snapshot()
	want := []string{OutcomeIPNotAllowed, OutcomeBadPassword, OutcomeTLSRequired, OutcomeBanned, OutcomeOK}
	if !slices.Equal(logins, want) {
		t.Errorf("outcomes %v, want %v", logins, want)
	}
}

// A stranger who connects to a passive port before the client gets nothing
// and takes nothing: its connection is closed, and the client's own is the
// one used. Before, the library answered the client 425 and kept the
// stranger's connection for its next transfer, which then sent the
// client's download to the stranger (or stored the stranger's bytes as the
// client's upload).
func TestPassivePortStrangerClosed(t *testing.T) {
	base := 20000 + int(time.Now().UnixNano()%8000)
	e := startEnv(t, func(c *Config) { c.PassiveStart, c.PassiveEnd = base, base+49 })
	writeFile(t, filepath.Join(e.dir(userA), "results", "secret.csv"), "CONFIDENTIAL")
	r := dialRaw(t, e.addr, "")
	r.login(userA, passA)
	code, msg := r.cmd("EPSV")
	if code != 229 {
		t.Fatalf("EPSV: %d %s", code, msg)
	}
	port := msg[strings.Index(msg, "(|||")+4 : strings.LastIndex(msg, "|)")]
	stranger, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}).
		Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("stranger's connection: %v", err)
	}
	defer stranger.Close()
	_ = stranger.SetDeadline(time.Now().Add(5 * time.Second))
	// The stranger's connection is closed without a byte.
	if n, err := stranger.Read(make([]byte, 64)); n != 0 || err == nil {
		t.Fatalf("stranger read %d bytes, err %v: want its connection closed", n, err)
	}
	data, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 5*time.Second)
	if err != nil {
		t.Fatalf("client's data connection: %v", err)
	}
	defer data.Close()
	_ = data.SetDeadline(time.Now().Add(10 * time.Second))
	if code, msg := r.cmd("RETR results/secret.csv"); code != 150 && code != 125 {
		t.Fatalf("RETR: %d %s", code, msg)
	}
	got, _ := io.ReadAll(data)
	if string(got) != "CONFIDENTIAL" {
		t.Fatalf("client got %q", got)
	}
	if code, msg := r.read(); code != 226 {
		t.Fatalf("after RETR: %d %s", code, msg)
	}
}

// Wrong passwords sent at once on parallel connections ban the address
// while the right one, among them, is being checked: it is refused too.
// Before, the ban was only looked up before bcrypt, and the right guess
// of such a burst got in.
func TestBanDuringPasswordCheck(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.MaxLoginFailures = 2
		c.LoginFailureWindow = time.Minute
		c.BanTime = time.Hour
	})
	compare := e.srv.compareHash
	e.srv.compareHash = func(hash, pw []byte) error {
		if string(pw) == passA {
			// The burst's wrong guesses finish first.
			for range 3 {
				e.srv.guard.fail(netip.MustParseAddr("127.0.0.1"))
			}
		}
		return compare(hash, pw)
	}
	c, err := e.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Quit() }()
	if err := c.Login(userA, passA); replyCode(err) != 530 {
		t.Fatalf("right password checked while the address got banned: %v, want 530", err)
	}
}
