package ftpd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
	"golang.org/x/crypto/bcrypt"

	"smsdrop/clock"
)

// The test accounts. "demo2" shares "demo"'s prefix on purpose: a sloppy
// chroot check ("starts with <data>/accounts/demo") would let demo into it.
const (
	userA = "demo"
	passA = "pw-demo"
	userB = "demo2"
	passB = "pw-demo2"
)

var subFolders = []string{"scheduled", "archive", "rejected", "results", "replies"}

// syncBuffer collects the server's logs; they are printed when a test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recorder collects the server's callbacks.
type recorder struct {
	mu      sync.Mutex
	uploads []string
	deletes []string
	logins  []string
}

func (r *recorder) upload(login, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uploads = append(r.uploads, login+"/"+name)
}

func (r *recorder) delete(login, rel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deletes = append(r.deletes, login+"/"+rel)
}

func (r *recorder) login(outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logins = append(r.logins, outcome)
}

func (r *recorder) snapshot() (uploads, deletes, logins []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.uploads), slices.Clone(r.deletes), slices.Clone(r.logins)
}

// env is a running server on 127.0.0.1 with two accounts in a temp dir.
type env struct {
	t    testing.TB
	srv  *Server
	addr string
	port int
	data string
	clk  *clock.Fake
	rec  *recorder
	logs *syncBuffer
	cfg  Config
}

func hash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func makeAccount(t testing.TB, data, login, pw string) Account {
	t.Helper()
	dir := filepath.Join(data, "accounts", login)
	for _, sub := range append([]string{""}, subFolders...) {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	return Account{Login: login, PasswordHash: hash(t, pw), Dir: dir}
}

// testConfig is a configuration for two accounts, callbacks recorded.
func testConfig(t testing.TB) (Config, *recorder, *clock.Fake, *syncBuffer) {
	t.Helper()
	data := t.TempDir()
	rec := &recorder{}
	clk := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	logs := &syncBuffer{}
	cfg := Config{
		Listen:   "127.0.0.1:0",
		Accounts: []Account{makeAccount(t, data, userA, passA), makeAccount(t, data, userB, passB)},
		OnUpload: rec.upload,
		OnDelete: rec.delete,
		OnLogin:  rec.login,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:    clk,
	}
	return cfg, rec, clk, logs
}

// startEnv starts a server; mutate may change the configuration first.
func startEnv(t testing.TB, mutate func(*Config)) *env {
	t.Helper()
	cfg, rec, clk, logs := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	_, portStr, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	return &env{
		t: t, srv: srv, addr: srv.Addr(), port: port,
		data: filepath.Dir(filepath.Dir(cfg.Accounts[0].Dir)),
		clk:  clk, rec: rec, logs: logs, cfg: cfg,
	}
}

func (e *env) dir(login string) string {
	return filepath.Join(e.data, "accounts", login)
}

// dial connects without logging in.
func (e *env) dial(opts ...ftp.DialOption) (*ftp.ServerConn, error) {
	opts = append([]ftp.DialOption{ftp.DialWithTimeout(5 * time.Second)}, opts...)
	return ftp.Dial(e.addr, opts...)
}

// login returns a logged-in client, closed at the end of the test.
func (e *env) login(user, pass string, opts ...ftp.DialOption) *ftp.ServerConn {
	e.t.Helper()
	c, err := e.dial(opts...)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { _ = c.Quit() })
	if err := c.Login(user, pass); err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// replyCode extracts the FTP reply code of a jlaffaye/ftp error.
func replyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// files lists the names of the regular files and symlinks directly in dir.
func files(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawClient speaks FTP by hand, for commands jlaffaye/ftp has no method for
// and for breaking transfers on purpose.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
	// replies keeps every reply text, to check none shows a host path.
	replies []string
}

func dialRaw(t testing.TB, addr, localIP string) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// A stuck server fails the test instead of hanging it.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawClient{t: t, conn: conn, tp: textproto.NewConn(conn)}
	if code, msg := r.read(); code != 220 {
		t.Fatalf("greeting: %d %s", code, msg)
	}
	return r
}

func (r *rawClient) read() (int, string) {
	r.t.Helper()
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	r.replies = append(r.replies, msg)
	return code, msg
}

func (r *rawClient) cmd(format string, args ...any) (int, string) {
	r.t.Helper()
	if _, err := r.tp.Cmd(format, args...); err != nil {
		r.t.Fatalf("send %q: %v", fmt.Sprintf(format, args...), err)
	}
	return r.read()
}

func (r *rawClient) login(user, pass string) {
	r.t.Helper()
	if code, msg := r.cmd("USER %s", user); code != 331 {
		r.t.Fatalf("USER: %d %s", code, msg)
	}
	if code, msg := r.cmd("PASS %s", pass); code != 230 {
		r.t.Fatalf("PASS: %d %s", code, msg)
	}
}

// openData sends EPSV and connects to the announced port.
func (r *rawClient) openData() *net.TCPConn {
	r.t.Helper()
	code, msg := r.cmd("EPSV")
	if code != 229 {
		r.t.Fatalf("EPSV: %d %s", code, msg)
	}
	start, end := strings.Index(msg, "(|||"), strings.LastIndex(msg, "|)")
	if start < 0 || end < start {
		r.t.Fatalf("EPSV reply %q", msg)
	}
	port := msg[start+4 : end]
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 5*time.Second)
	if err != nil {
		r.t.Fatalf("data connection: %v", err)
	}
	r.t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		r.t.Fatalf("data connection is %T", conn)
	}
	return tc
}

// selfSigned writes a certificate for 127.0.0.1 and its key; it returns
// their paths and a pool trusting the certificate.
func selfSigned(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smsdrop test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// curl runs the curl command line; tests using it are skipped without it.
func curl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	cmd := exec.Command(path, append([]string{"-sS", "--max-time", "30"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tlsClientConfig trusts pool and records whether each handshake resumed a
// session.
func tlsClientConfig(pool *x509.CertPool, resumed *[]bool, mu *sync.Mutex) *tls.Config {
	return &tls.Config{
		RootCAs:            pool,
		ServerName:         "127.0.0.1",
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(16),
		VerifyConnection: func(cs tls.ConnectionState) error {
			mu.Lock()
			defer mu.Unlock()
			*resumed = append(*resumed, cs.DidResume)
			return nil
		},
	}
}
