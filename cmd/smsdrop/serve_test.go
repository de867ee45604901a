package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
	"golang.org/x/crypto/bcrypt"
)

// The tests in this file run the real binary, as users and their init
// systems do: signals, exit codes, kill -9 and restarts.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smsdrop-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "smsdrop")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build smsdrop: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func demoHash(t *testing.T) string {
	h, err := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type server struct {
	t       *testing.T
	dir     string
	config  string
	addr    string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	waitErr chan error
}

func newServer(t *testing.T, rate int, extra string) *server {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	// A range below the kernel's ephemeral ports: one port taken from
	// the ephemeral range could be another test's client port by the time
	// a transfer listens on it ("could not find any port to listen to").
	pasv := 20000 + rand.IntN(8000)
	cfg := fmt.Sprintf(`data_dir = %q
[ftp]
listen = "127.0.0.1:%d"
passive_ports = "%d-%d"
[sender]
rate = %d
[sender.sim]
delivery_delay = "50ms"
[processing]
settle = "200ms"
[[account]]
login = "demo"
password_hash = %q
code = "DEMO"
max_recipients = 100000
%s`, filepath.Join(dir, "data"), port, pasv, pasv+49, rate, demoHash(t), extra)
	path := filepath.Join(dir, "smsdrop.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return &server{t: t, dir: filepath.Join(dir, "data"), config: path, addr: fmt.Sprintf("127.0.0.1:%d", port)}
}

func (s *server) start() {
	s.t.Helper()
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(binPath, "serve", "-config", s.config)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.waitErr = make(chan error, 1)
	go func() { s.waitErr <- s.cmd.Wait() }()
	s.t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.waitErr
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server did not start: %s", s.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) kill9() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	<-s.waitErr
}

func (s *server) upload(name, body string) {
	s.t.Helper()
	c, err := ftp.Dial(s.addr, ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Login("demo", "demo"); err != nil {
		s.t.Fatal(err)
	}
	if err := c.Stor(name, strings.NewReader(body)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) acct(p ...string) string {
	return filepath.Join(append([]string{s.dir, "accounts", "demo"}, p...)...)
}

func (s *server) waitState(name string, state string) string {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(s.acct("results", name+".report"))
		if err == nil && strings.Contains(string(b), "\nstate: "+state+"\n") {
			return string(b)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s never reached %s; report:\n%s\nlog:\n%s", name, state, b, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bigFile(n int) string {
	var b strings.Builder
	b.WriteString("U-DEMO\nT-Hello #1#, your parcel is ready\n")
	for i := range n {
		fmt.Fprintf(&b, "#-4471234%05d;Customer %d\n", i, i)
	}
	return b.String()
}

func TestServeSIGTERMExitsZeroAndFlushes(t *testing.T) {
	s := newServer(t, 200, "")
	s.start()
	s.upload("big.txt", bigFile(2000))
	s.waitState("big.txt", "sending")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.waitErr:
		if err != nil {
			t.Fatalf("SIGTERM: exit %v\n%s", err, s.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after SIGTERM")
	}
	// The results on disk match the store: after a restart, the batch
	// finishes and nothing was sent twice.
	s.start()
	rep := s.waitState("big.txt", "done")
	// Lines ending in 0013..0016 are the sim's test numbers.
	if !strings.Contains(rep, "\nwait: 0\non: 0\nok: 1996\nko: 1\nrep: 2\nno: 1\n") {
		t.Errorf("after restart:\n%s", rep)
	}
	checkOutbox(t, s, 2000)
}

// checkOutbox verifies the guarantees with the sim outbox and the CSV: no
// message handed over twice, and every recipient handed over (ok) or
// explicitly unconfirmed.
func checkOutbox(t *testing.T, s *server, want int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.dir, "sim-outbox.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m struct{ ID string }
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("outbox line %q: %v", l, err)
		}
		if seen[m.ID] {
			t.Errorf("message %s handed over twice", m.ID)
		}
		seen[m.ID] = true
	}
	f, err := os.Open(s.acct("results", "big.txt.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows)-1 != want {
		t.Fatalf("%d CSV rows, want %d", len(rows)-1, want)
	}
	unconfirmed := 0
	for _, r := range rows[1:] {
		id, status, code := r[4], r[5], r[6]
		switch {
		case seen[id] && (status == "ok" || status == "rep" || status == "ko" && code == "UNDELIVERED" || status == "no" && code == "UNKNOWN"):
			// Handed over once, final status from the sim's test numbers.
		case status == "no" && code == "UNCONFIRMED":
			unconfirmed++
		default:
			t.Errorf("recipient line %s: status %s %s, in outbox %v", r[0], status, code, seen[id])
		}
	}
	t.Logf("%d handed over, %d unconfirmed after crashes", len(seen), unconfirmed)
}

func TestKill9NothingLostNothingTwice(t *testing.T) {
	tests := []struct {
		name string
		// kill decides when to kill -9 the server after the upload returned.
		kill func(s *server)
	}{
		{"right after 226", func(*server) {}},
		{"during ingest", func(*server) { time.Sleep(30 * time.Millisecond) }},
		{"during sending", func(s *server) {
			s.waitState("big.txt", "sending")
			time.Sleep(300 * time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, 1000, "")
			s.start()
			s.upload("big.txt", bigFile(2000))
			tt.kill(s)
			s.kill9()
			s.start()
			rep := s.waitState("big.txt", "done")
			if !strings.HasPrefix(rep, "batch: 1\n") {
				t.Errorf("file processed as another batch:\n%s", rep)
			}
			ents, _ := os.ReadDir(s.acct())
			for _, e := range ents {
				if !e.IsDir() {
					t.Errorf("file left in the inbox: %s", e.Name())
				}
			}
			for _, dir := range []string{"rejected", "scheduled"} {
				if ents, _ := os.ReadDir(s.acct(dir)); len(ents) != 0 {
					t.Errorf("%s/ holds %d files: processed twice?", dir, len(ents))
				}
			}
			checkOutbox(t, s, 2000)
		})
	}
}
