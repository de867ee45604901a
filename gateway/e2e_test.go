package gateway

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
	"golang.org/x/crypto/bcrypt"

	"smsdrop/config"
)

// env is a running gateway on a free port with its data in a temp dir.
type env struct {
	t   *testing.T
	cfg *config.Config
	g   *Gateway
}

func hash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func testConfig(t testing.TB) *config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.FTP.Listen = "127.0.0.1:0"
	cfg.FTP.PassiveStart, cfg.FTP.PassiveEnd = 0, 0
	cfg.Sender.Rate = 0
	cfg.Sender.Sim.DeliveryDelay = 20 * time.Millisecond
	cfg.Sender.Sim.Outbox = filepath.Join(cfg.DataDir, "sim-outbox.jsonl")
	cfg.Processing.Settle = 100 * time.Millisecond
	cfg.Processing.Rescan = time.Second
	demo := cfg.Accounts[0]
	other := demo
	other.Login, other.Code, other.PasswordHash = "other", "OTHER", hash(t, "other")
	cfg.Accounts = []config.Account{demo, other}
	return cfg
}

func start(t *testing.T, cfg *config.Config) *env { return startWith(t, cfg, nil) }

func (e *env) stop() {
	if e.g != nil {
		if err := e.g.Stop(); err != nil {
			e.t.Errorf("stop: %v", err)
		}
		e.g = nil
	}
}

func (e *env) dir(login string) string { return AccountDir(e.cfg.DataDir, login) }

func (e *env) login(user, pw string) *ftp.ServerConn {
	e.t.Helper()
	c, err := ftp.Dial(e.g.FTPAddr(), ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Login(user, pw); err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	e.t.Cleanup(func() { c.Quit() })
	return c
}

// waitFor polls cond until it is true or 15 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// report parses a NAME.report into its keys (repeated keys joined by "\n").
func readReport(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		if old, ok := m[k]; ok {
			v = old + "\n" + v
		}
		m[k] = v
	}
	return m
}

func waitState(t *testing.T, path string, states ...string) map[string]string {
	t.Helper()
	var rep map[string]string
	waitFor(t, path+" in state "+strings.Join(states, "|"), func() bool {
		if _, err := os.Stat(path); err != nil {
			return false
		}
		rep = readReport(t, path)
		for _, s := range states {
			if rep["state"] == s {
				return true
			}
		}
		return false
	})
	return rep
}

func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

const seedPersonalised = "U-DEMO\nT>Hello #1# #2#,\nT-You car is ready.\nT-Best regards\n#-447123456789;M;SMITH\n#-441234567891;Mrs;JONES\n"

const seedMailing = `U-code
D-2017-08-04T12:30:00
T-first text message for 3 recipients
#-447123456789
#-441234567891
#-441234567892
T-second text message
T-for 2 recipients
#-441234567893
#-441234567894
T-last text message for 3
#-441234567895
#-441234567896
#-441234567897
`

func TestSeedExamplesDelivered(t *testing.T) {
	cfg := testConfig(t)
	cfg.Accounts[0].Code = "code" // the seed's §4.2 example says U-code
	e := start(t, cfg)
	c := e.login("demo", "demo")
	if err := c.Stor("mailing.txt", strings.NewReader(seedMailing)); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, filepath.Join(e.dir("demo"), "results", "mailing.txt.report"), "done")
	for k, want := range map[string]string{"batch": "1", "file": "mailing.txt", "account": "demo", "messages": "3",
		"recipients": "8", "segments": "8", "ok": "8", "wait": "0", "on": "0", "ko": "0"} {
		if rep[k] != want {
			t.Errorf("report %s = %q, want %q", k, rep[k], want)
		}
	}
	if _, ok := rep["scheduled"]; ok {
		t.Errorf("a past D- is sent now, report says scheduled: %q", rep["scheduled"])
	}
	rows := readCSV(t, filepath.Join(e.dir("demo"), "results", "mailing.txt.csv"))
	if len(rows) != 8 {
		t.Fatalf("%d CSV rows, want 8", len(rows))
	}
	if r := rows[3]; r["line"] != "9" || r["message"] != "2" || r["recipient"] != "+441234567893" ||
		r["status"] != "ok" || r["message_id"] != "1-9" || r["encoding"] != "gsm" || r["segments"] != "1" {
		t.Errorf("row 4 = %v", r)
	}
	if _, err := os.Stat(filepath.Join(e.dir("demo"), "archive", "1_mailing.txt")); err != nil {
		t.Errorf("file not archived: %v", err)
	}

	// The personalised example, uploaded with curl.
	src := filepath.Join(t.TempDir(), "perso.txt")
	if err := os.WriteFile(src, []byte(strings.Replace(seedPersonalised, "U-DEMO", "U-code", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("curl", "-sS", "-T", src, "ftp://demo:demo@"+e.g.FTPAddr()+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	waitState(t, filepath.Join(e.dir("demo"), "results", "perso.txt.report"), "done")
	rows = readCSV(t, filepath.Join(e.dir("demo"), "results", "perso.txt.csv"))
	if len(rows) != 2 || rows[0]["status"] != "ok" || rows[1]["recipient"] != "+441234567891" {
		t.Fatalf("rows = %v", rows)
	}
	// The outbox has the final personalised texts.
	ob := outbox(t, cfg.Sender.Sim.Outbox)
	if got := ob["2-6"]["text"]; got != "Hello Mrs JONES,\nYou car is ready.\nBest regards" {
		t.Errorf("outbox text = %q", got)
	}
	if len(ob) != 10 {
		t.Errorf("outbox has %d messages, want 10", len(ob))
	}
	// The report can be downloaded over FTP.
	r, err := c.Retr("results/perso.txt.report")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r)
	r.Close()
	if !bytes.HasPrefix(body, []byte("batch: 2\nfile: perso.txt\n")) {
		t.Errorf("downloaded report starts %q", body[:min(40, len(body))])
	}
}

// outbox reads the sim outbox, keyed by message id; it fails on an id seen
// twice (a message handed over twice).
func outbox(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("outbox line %q: %v", l, err)
		}
		id := fmt.Sprint(m["id"])
		if _, dup := out[id]; dup {
			t.Errorf("message %s handed over twice", id)
		}
		out[id] = m
	}
	return out
}

func TestRejectedFile(t *testing.T) {
	e := start(t, testConfig(t))
	c := e.login("demo", "demo")
	if err := c.Stor("bad.txt", strings.NewReader("U-DEMO\nD-2017-13-45\nT-hi\n#-447123456789\n")); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, filepath.Join(e.dir("demo"), "results", "bad.txt.report"), "rejected")
	if !strings.Contains(rep["error"], "line 2") {
		t.Errorf("error does not name line 2: %q", rep["error"])
	}
	if _, err := os.Stat(filepath.Join(e.dir("demo"), "results", "bad.txt.csv")); err == nil {
		t.Error("a rejected file got a CSV")
	}
	if _, err := os.Stat(filepath.Join(e.dir("demo"), "rejected", "1_bad.txt")); err != nil {
		t.Errorf("file not in rejected/: %v", err)
	}
	// Bad recipients do not reject the file.
	if err := c.Stor("mixed.txt", strings.NewReader("U-DEMO\nT-hi\n#-447123456789\n#-12\n#-447123450013\n")); err != nil {
		t.Fatal(err)
	}
	rep = waitState(t, filepath.Join(e.dir("demo"), "results", "mixed.txt.report"), "done")
	if rep["ok"] != "1" || rep["ko"] != "2" {
		t.Errorf("ok/ko = %s/%s, want 1/2", rep["ok"], rep["ko"])
	}
	rows := readCSV(t, filepath.Join(e.dir("demo"), "results", "mixed.txt.csv"))
	if rows[1]["code"] != "INVALID_NUMBER" || rows[1]["message_id"] != "" || rows[2]["code"] != "UNDELIVERED" {
		t.Errorf("rows = %v", rows)
	}
}

// SPEC §5: names starting with a dot or ending in .part (and the like)
// are ignored until renamed, so a client may upload under a temporary
// name and rename it. A dot name was refused (553) before.
func TestTemporaryNameUploadThenRename(t *testing.T) {
	e := start(t, testConfig(t))
	c := e.login("demo", "demo")
	temps := []string{"x.part", ".y.txt"}
	for _, name := range temps {
		body := strings.Replace(seedPersonalised, "T-Best regards", "T-Best regards ("+name+")", 1)
		if err := c.Stor(name, strings.NewReader(body)); err != nil {
			t.Fatalf("STOR %s: %v", name, err)
		}
	}
	// Give the watcher a chance to (wrongly) pick them up.
	time.Sleep(3 * e.cfg.Processing.Settle)
	listed, err := c.NameList("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range temps {
		if _, err := os.Stat(filepath.Join(e.dir("demo"), name)); err != nil {
			t.Fatalf("%s was processed before its rename: %v", name, err)
		}
		if !slices.Contains(listed, name) {
			t.Errorf("%s not listed in the inbox: %v", name, listed)
		}
	}
	for i, name := range temps {
		final := fmt.Sprintf("final%d.txt", i)
		if err := c.Rename(name, final); err != nil {
			t.Fatalf("rename %s: %v", name, err)
		}
		waitState(t, filepath.Join(e.dir("demo"), "results", final+".report"), "done")
	}
}

func TestLocalWriterAppendingSlowly(t *testing.T) {
	cfg := testConfig(t)
	// The writer pauses 50 ms between lines, well inside the settle time,
	// so a busy machine does not make a pause look like the end.
	cfg.Processing.Settle = 500 * time.Millisecond
	e := start(t, cfg)
	path := filepath.Join(e.dir("demo"), "export.txt")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(seedPersonalised, "\n")
	for _, l := range lines {
		if _, err := f.WriteString(l); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Close()
	rep := waitState(t, filepath.Join(e.dir("demo"), "results", "export.txt.report"), "done")
	if rep["recipients"] != "2" {
		t.Errorf("recipients = %q: the file was read before it was complete", rep["recipients"])
	}
}

func TestAccountsAndPermissions(t *testing.T) {
	e := start(t, testConfig(t))
	if _, err := ftp.Dial(e.g.FTPAddr()); err != nil {
		t.Fatal(err)
	}
	bad, _ := ftp.Dial(e.g.FTPAddr())
	if err := bad.Login("demo", "wrong"); err == nil || !strings.Contains(err.Error(), "530") {
		t.Errorf("wrong password: %v, want 530", err)
	}
	c := e.login("demo", "demo")
	o := e.login("other", "other")
	if err := o.Stor("theirs.txt", strings.NewReader("U-OTHER\nT-x\n#-447123456789\n")); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(e.dir("other"), "results", "theirs.txt.report"), "done")
	names, err := c.NameList("results")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, "theirs") {
			t.Errorf("demo sees other's file %s", n)
		}
	}
	if _, err := c.Retr("../other/results/theirs.txt.report"); err == nil {
		t.Error("demo read other's report")
	}
	if err := c.Stor("results/x", strings.NewReader("x")); err == nil {
		t.Error("STOR in results/ accepted")
	}
	if err := c.MakeDir("new"); err == nil {
		t.Error("MKD accepted")
	}
	// curl: SITE CHMOD refused, and a path outside the account is not read.
	out, err := exec.Command("curl", "-sS", "ftp://demo:demo@"+e.g.FTPAddr()+"/", "-Q", "SITE CHMOD 777 results").CombinedOutput()
	if err == nil {
		t.Errorf("SITE CHMOD accepted: %s", out)
	}
	out, err = exec.Command("curl", "-sS", "ftp://demo:demo@"+e.g.FTPAddr()+"/../../etc/passwd").CombinedOutput()
	if err == nil || strings.Contains(string(out), "root:") {
		t.Errorf("RETR ../../etc/passwd: %v %s", err, out)
	}
	if strings.Contains(string(out), e.cfg.DataDir) {
		t.Errorf("reply shows a host path: %s", out)
	}
}

func TestRestartKeepsResultsAndIDs(t *testing.T) {
	cfg := testConfig(t)
	e := start(t, cfg)
	c := e.login("demo", "demo")
	if err := c.Stor("a.txt", strings.NewReader(seedPersonalised)); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(e.dir("demo"), "results", "a.txt.report"), "done")
	c.Quit()
	e.stop()

	e2 := start(t, cfg)
	if rep := readReport(t, filepath.Join(e2.dir("demo"), "results", "a.txt.report")); rep["batch"] != "1" || rep["state"] != "done" {
		t.Errorf("report after restart: %v", rep)
	}
	c2 := e2.login("demo", "demo")
	if err := c2.Stor("b.txt", strings.NewReader(strings.Replace(seedPersonalised, "SMITH", "SMYTHE", 1))); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, filepath.Join(e2.dir("demo"), "results", "b.txt.report"), "done")
	if rep["batch"] != "2" {
		t.Errorf("batch id after restart = %s, want 2", rep["batch"])
	}
}

// A file renamed or deleted while it is processed: the server either acts
// before processing starts or refuses with 550, so a file is never
// processed twice (a rename) nor sent after a successful DELE.
func TestRenameOrDeleteWhileProcessed(t *testing.T) {
	for _, op := range []string{"rename", "delete"} {
		t.Run(op, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Accounts[0].DedupeWindow = 0 // a second processing would send again
			cfg.Accounts[0].MaxRecipients = 20000
			e := start(t, cfg)
			c := e.login("demo", "demo")
			// Big enough that processing takes tens of milliseconds.
			if err := c.Stor("big.txt", strings.NewReader(dropFile("DEMO", op, 0, 20000))); err != nil {
				t.Fatal(err)
			}
			var err error
			if op == "rename" {
				err = c.Rename("big.txt", "moved.txt")
			} else {
				err = c.Delete("big.txt")
			}
			results := filepath.Join(e.dir("demo"), "results")
			var te *textproto.Error
			switch {
			case err == nil && op == "rename":
				waitState(t, filepath.Join(results, "moved.txt.report"), "sending", "done")
			case err == nil:
				time.Sleep(5 * cfg.Processing.Settle)
			case errors.As(err, &te) && te.Code == 550 && strings.Contains(te.Msg, "being processed"):
				waitState(t, filepath.Join(results, "big.txt.report"), "sending", "done")
			default:
				t.Fatalf("%s: %v, want success or 550 being processed", op, err)
			}
			t.Logf("%s: %v", op, err)
			time.Sleep(5 * cfg.Processing.Settle) // a second processing, if any, shows by now
			ents, _ := os.ReadDir(results)
			var reports []string
			for _, ent := range ents {
				if strings.HasSuffix(ent.Name(), ".report") {
					reports = append(reports, ent.Name())
				}
			}
			want := 1
			if err == nil && op == "delete" {
				want = 0
			}
			if len(reports) != want {
				t.Fatalf("reports %v after %s (%v), want %d", reports, op, err, want)
			}
		})
	}
}

// A file over max_file_size uploaded over FTP is rejected with a report,
// like one dropped locally (SPEC §2). Before, the upload was cut off with
// 552 and no result file was ever written.
func TestOversizedUploadRejectedWithReport(t *testing.T) {
	cfg := testConfig(t)
	cfg.Accounts[0].MaxFileSize = 300
	e := start(t, cfg)
	c := e.login("demo", "demo")
	if err := c.Stor("big.txt", strings.NewReader(dropFile("DEMO", "big", 0, 30))); err != nil {
		t.Fatalf("STOR over max_file_size: %v", err)
	}
	rep := waitState(t, filepath.Join(e.dir("demo"), "results", "big.txt.report"), "rejected")
	if !strings.Contains(rep["error"], "larger than max_file_size") {
		t.Errorf("report %v", rep)
	}
	if _, err := os.Stat(filepath.Join(e.dir("demo"), "results", "big.txt.csv")); err == nil {
		t.Error("a rejected file has a CSV")
	}
}
