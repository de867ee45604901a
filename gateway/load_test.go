package gateway

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"smsdrop/config"
)

// loadDeadline bounds every wait of the load tests. It is generous on
// purpose: the machine is shared, and these tests assert that nothing is
// lost or doubled and that the server answers, not how fast it does.
const loadDeadline = 30 * time.Second

// loadNumber is the i-th of ten million distinct valid GB mobile numbers
// (+4471xxxxxxx1). The last digit is always 1, so none ends in the sim's
// special test endings 0013..0016 and every message is delivered "ok".
func loadNumber(i int) string {
	return fmt.Sprintf("+4471%07d1", i)
}

// dropFile is one drop file for account code: one message whose text names
// the file (so every file's bytes differ and no upload is a duplicate), to
// recipients numbers first..first+n-1.
func dropFile(code, tag string, first, n int) string {
	var b strings.Builder
	b.Grow(32 + n*18)
	fmt.Fprintf(&b, "U-%s\nT-Load %s\n", code, tag)
	for i := range n {
		b.WriteString("#-")
		b.WriteString(loadNumber(first + i))
		b.WriteByte('\n')
	}
	return b.String()
}

// loadConfig is testConfig with connection limits that let many clients
// from 127.0.0.1 in, and a demo password hashed at bcrypt's minimum cost:
// these tests load the gateway, not bcrypt.
func loadConfig(t testing.TB) *config.Config {
	cfg := testConfig(t)
	cfg.FTP.MaxConnections = 100
	cfg.FTP.MaxConnectionsPerIP = 100
	cfg.Accounts[0].PasswordHash = hash(t, "demo")
	return cfg
}

// dialDeadline connects and logs in with every connection of the client —
// control and data — bound by one absolute deadline, so a server that stops
// answering fails the caller with a timeout instead of hanging it.
func dialDeadline(addr, user, pw string, deadline time.Time) (*ftp.ServerConn, error) {
	dial := func(network, address string) (net.Conn, error) {
		conn, err := net.DialTimeout(network, address, time.Until(deadline))
		if err != nil {
			return nil, err
		}
		return conn, conn.SetDeadline(deadline)
	}
	c, err := ftp.Dial(addr, ftp.DialWithDialFunc(dial))
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, pw); err != nil {
		c.Quit()
		return nil, err
	}
	return c, nil
}

// probe is what "the server is responsive" means: a new client logs in and
// lists the inbox and results/, all within loadDeadline.
func probe(addr string) error {
	c, err := dialDeadline(addr, "demo", "demo", time.Now().Add(loadDeadline))
	if err != nil {
		return fmt.Errorf("probe login: %w", err)
	}
	defer c.Quit()
	if _, err := c.List("/"); err != nil {
		return fmt.Errorf("probe LIST /: %w", err)
	}
	if _, err := c.List("results"); err != nil {
		return fmt.Errorf("probe LIST results: %w", err)
	}
	return nil
}

// sentFile is what a load test uploaded: its name and its recipients.
type sentFile struct {
	name    string
	tag     string
	numbers []string
}

// checkAllDelivered waits until every file has a done report, then checks
// that nothing was lost or handled twice: one batch per file with distinct
// ids, every recipient ok, the inbox empty, every file in archive/ and none
// in rejected/, and the sim outbox holding each message exactly once, with
// the text and number of its file.
func checkAllDelivered(t *testing.T, e *env, files []sentFile) {
	t.Helper()
	dir := e.dir("demo")
	res := filepath.Join(dir, "results")
	// Done reports are final: each round reads the pending ones only until
	// the first that is not done yet, so polling costs the gateway little.
	// The deadline is for progress, not for the whole load: a stuck
	// gateway fails, a slow shared machine does not.
	pending := make([]string, len(files))
	for i, f := range files {
		pending[i] = f.name
	}
	deadline := time.Now().Add(loadDeadline)
	for len(pending) > 0 {
		b, err := os.ReadFile(filepath.Join(res, pending[0]+".report"))
		if err == nil && strings.Contains(string(b), "\nstate: done\n") {
			pending = pending[1:]
			deadline = time.Now().Add(loadDeadline)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d files without a done report, none done for %v (next: %s)",
				len(pending), len(files), loadDeadline, pending[0])
		}
		time.Sleep(20 * time.Millisecond)
	}

	ob := outbox(t, e.cfg.Sender.Sim.Outbox) // fails on an id handed over twice
	ids := map[string]string{}               // batch id → file
	wantMsgs := 0
	for _, f := range files {
		rep := readReport(t, filepath.Join(res, f.name+".report"))
		n := strconv.Itoa(len(f.numbers))
		if rep["recipients"] != n || rep["ok"] != n || rep["file"] != f.name {
			t.Errorf("%s: report %v, want %s recipients all ok", f.name, rep, n)
		}
		if other, dup := ids[rep["batch"]]; dup {
			t.Errorf("batch %s is both %s and %s", rep["batch"], other, f.name)
		}
		ids[rep["batch"]] = f.name
		rows := readCSV(t, filepath.Join(res, f.name+".csv"))
		if len(rows) != len(f.numbers) {
			t.Errorf("%s: %d CSV rows, want %d", f.name, len(rows), len(f.numbers))
			continue
		}
		for i, r := range rows {
			wantMsgs++
			m, ok := ob[r["message_id"]]
			switch {
			case r["status"] != "ok" || r["recipient"] != f.numbers[i]:
				t.Errorf("%s row %d: %v", f.name, i, r)
			case !ok:
				t.Errorf("%s row %d: message %s not in the outbox", f.name, i, r["message_id"])
			case m["to"] != f.numbers[i] || m["text"] != "Load "+f.tag || fmt.Sprint(m["batch"]) != rep["batch"]:
				t.Errorf("%s row %d: outbox has %v", f.name, i, m)
			}
		}
	}
	if len(ob) != wantMsgs {
		t.Errorf("outbox has %d messages, want %d", len(ob), wantMsgs)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("%d files left in the inbox", n)
	}
	if n := countFiles(t, filepath.Join(dir, "archive")); n != len(files) {
		t.Errorf("archive/ has %d files, want %d", n, len(files))
	}
	if n := countFiles(t, filepath.Join(dir, "rejected")); n != 0 {
		t.Errorf("rejected/ has %d files, want none", n)
	}
}

// countFiles counts the non-directory entries of dir, hidden ones included
// (a leftover temporary upload is a lost file too).
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, en := range ents {
		if !en.IsDir() {
			n++
		}
	}
	return n
}

func TestConcurrentClients(t *testing.T) {
	const (
		clients    = 40
		perClient  = 10
		recipients = 3
	)
	cfg := loadConfig(t)
	e := start(t, cfg)
	addr := e.g.FTPAddr()

	files := make([]sentFile, 0, clients*perClient)
	for c := range clients {
		for f := range perClient {
			k := c*perClient + f
			tag := fmt.Sprintf("client %d file %d", c, f)
			sf := sentFile{name: fmt.Sprintf("c%02d-f%02d.txt", c, f), tag: tag}
			for i := range recipients {
				sf.numbers = append(sf.numbers, loadNumber(k*recipients+i))
			}
			files = append(files, sf)
		}
	}

	var (
		uploaded  atomic.Int64
		loadDone  = make(chan struct{})
		loaders   sync.WaitGroup
		probeErrs = make(chan error, 1)
		probesRun atomic.Int64
	)
	for c := range clients {
		loaders.Add(1)
		go func() {
			defer loaders.Done()
			conn, err := dialDeadline(addr, "demo", "demo", time.Now().Add(2*loadDeadline))
			if err != nil {
				t.Errorf("client %d: %v", c, err)
				return
			}
			defer conn.Quit()
			for f := range perClient {
				k := c*perClient + f
				sf := files[k]
				body := dropFile("DEMO", sf.tag, k*recipients, recipients)
				if err := conn.Stor(sf.name, strings.NewReader(body)); err != nil {
					t.Errorf("client %d STOR %s: %v", c, sf.name, err)
					return
				}
				uploaded.Add(1)
			}
		}()
	}
	// The prober starts once uploads are flowing and keeps logging in and
	// listing until the load ends; at least one probe must start while the
	// loaders are still at work.
	go func() {
		for uploaded.Load() < clients && !closed(loadDone) {
			time.Sleep(time.Millisecond)
		}
		for {
			if closed(loadDone) {
				probeErrs <- nil
				return
			}
			probesRun.Add(1)
			if err := probe(addr); err != nil {
				probeErrs <- err
				return
			}
		}
	}()
	loaders.Wait()
	close(loadDone)
	if err := <-probeErrs; err != nil {
		t.Errorf("server not responsive under load: %v", err)
	}
	if probesRun.Load() == 0 {
		t.Error("no probe ran while the load was running")
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d uploads by %d clients; %d probes (login + 2 LIST) during the load", uploaded.Load(), clients, probesRun.Load())
	checkAllDelivered(t, e, files)
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestFloodOneSession(t *testing.T) {
	const n = 2000
	cfg := loadConfig(t)
	e := start(t, cfg)
	c, err := dialDeadline(e.g.FTPAddr(), "demo", "demo", time.Now().Add(4*loadDeadline))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	files := make([]sentFile, n)
	t0 := time.Now()
	for i := range files {
		// One or two recipients, so files differ in shape too.
		k := 1 + i%2
		f := sentFile{name: fmt.Sprintf("flood-%04d.txt", i), tag: fmt.Sprintf("flood %d", i)}
		for j := range k {
			f.numbers = append(f.numbers, loadNumber(2*i+j))
		}
		if err := c.Stor(f.name, strings.NewReader(dropFile("DEMO", f.tag, 2*i, k))); err != nil {
			t.Fatalf("STOR %d: %v", i, err)
		}
		files[i] = f
	}
	t.Logf("%d STORs in one session took %v", n, time.Since(t0))
	// The flooding session itself still answers.
	if _, err := c.List("results"); err != nil {
		t.Fatalf("LIST after the flood: %v", err)
	}
	checkAllDelivered(t, e, files)
}
