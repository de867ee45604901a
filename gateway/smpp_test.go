package gateway

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// smsc runs test/smsc/smsc.js (node-smpp), an SMSC independent of our
// driver, and answers every submit_sm with a DELIVRD receipt.
type smsc struct {
	port   int
	stdin  io.WriteCloser
	mu     sync.Mutex
	submit []map[string]any
	// manual, when set, leaves receipts to the test.
	manual atomic.Bool
}

func startSMSC(t *testing.T) *smsc {
	t.Helper()
	if os.Getenv("SMSDROP_SKIP_SMPP") == "1" {
		t.Skip("SMSDROP_SKIP_SMPP=1")
	}
	dir, err := filepath.Abs("../test/smsc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is needed for the SMPP tests (or set SMSDROP_SKIP_SMPP=1)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "smpp")); err != nil {
		t.Fatalf("run: cd test/smsc && npm install smpp@0.5.1 (%v)", err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "smsc.js"), "--port", "0", "--system-id", "smsdrop", "--password", "secret")
	stdout, _ := cmd.StdoutPipe()
	stdin, _ := cmd.StdinPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	s := &smsc{stdin: stdin}
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			switch {
			case ev["ev"] == "listening":
				ready <- int(ev["port"].(float64))
			case ev["ev"] == "pdu" && ev["command"] == "submit_sm":
				s.mu.Lock()
				s.submit = append(s.submit, ev)
				s.mu.Unlock()
				if id, ok := ev["message_id"].(string); ok && !s.manual.Load() {
					s.send(map[string]any{"cmd": "receipt", "id": id, "stat": "DELIVRD", "tlv_id": id})
				}
			}
		}
	}()
	select {
	case s.port = <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("the test SMSC did not start")
	}
	return s
}

func (s *smsc) send(cmd map[string]any) {
	b, _ := json.Marshal(cmd)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stdin.Write(append(b, '\n'))
}

func (s *smsc) submits() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.submit...)
}

func TestThroughSMPP(t *testing.T) {
	sc := startSMSC(t)
	cfg := testConfig(t)
	cfg.Sender.Driver = "smpp"
	cfg.Sender.SMPP.Addr = fmt.Sprintf("127.0.0.1:%d", sc.port)
	cfg.Sender.SMPP.SystemID, cfg.Sender.SMPP.Password = "smsdrop", "secret"
	cfg.Sender.SMPP.SourceAddr = "447000000000"
	cfg.Sender.SMPP.Window = 10
	cfg.Sender.SMPP.EnquireLink = 30 * time.Second
	cfg.Accounts[0].SenderID = "SHOP"
	cfg.Accounts[0].Charset = "auto"
	e := start(t, cfg)
	c := e.login("demo", "demo")
	body := "U-DEMO\nT-" + strings.Repeat("long ", 40) + "\n#-447123450001\nT-Привет\n#-447123450002\n"
	if err := c.Stor("smpp.txt", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, filepath.Join(e.dir("demo"), "results", "smpp.txt.report"), "done")
	if rep["ok"] != "2" || rep["segments"] != "3" {
		t.Errorf("report: %v", rep)
	}
	subs := sc.submits()
	if len(subs) != 3 {
		t.Fatalf("%d submit_sm, want 3", len(subs))
	}
	for i, want := range []struct {
		dc, esm float64
		udh     string
	}{{0, 0x40, "05000301"}, {0, 0x40, "05000301"}, {8, 0, ""}} {
		s := subs[i]
		if s["data_coding"] != want.dc || s["esm_class"] != want.esm || s["source_addr"] != "SHOP" {
			t.Errorf("submit %d: %v", i, s)
		}
		sm, _ := hex.DecodeString(fmt.Sprint(s["short_message"]))
		if want.udh != "" && !strings.HasPrefix(hex.EncodeToString(sm), want.udh[:6]) {
			t.Errorf("submit %d has no concatenation UDH: %x", i, sm)
		}
	}
	// A reply from the second recipient opts it out.
	sc.send(map[string]any{"cmd": "mo", "from": "447123450002", "to": "SHOP", "data_coding": 0,
		"short_message": hex.EncodeToString([]byte("STOP"))})
	waitFor(t, "reply stored", func() bool {
		r := readReport(t, filepath.Join(e.dir("demo"), "results", "smpp.txt.report"))
		return r["rep"] == "1"
	})
	if rows := readCSV(t, filepath.Join(e.dir("demo"), "results", "smpp.txt.csv")); rows[1]["reply"] != "STOP" {
		t.Errorf("rows = %v", rows)
	}
	if opt, _ := e.g.Store().OptedOut("demo"); !opt["+447123450002"] {
		t.Error("STOP over SMPP did not opt the number out")
	}
}

// An SMSC that answers submit_sm with hex ids and writes them in decimal in
// its receipts: a receipt that comes after a restart still finds its part.
// Before, the index of ids matching the two was in memory only, and such a
// message ended no NO_RECEIPT.
func TestSMPPReceiptInOtherBaseAfterRestart(t *testing.T) {
	sc := startSMSC(t)
	sc.manual.Store(true)
	sc.send(map[string]any{"cmd": "config", "ids": "hex"})
	cfg := testConfig(t)
	cfg.Sender.Driver = "smpp"
	cfg.Sender.SMPP.Addr = fmt.Sprintf("127.0.0.1:%d", sc.port)
	cfg.Sender.SMPP.SystemID, cfg.Sender.SMPP.Password = "smsdrop", "secret"
	cfg.Sender.SMPP.Window = 10
	cfg.Sender.SMPP.EnquireLink = 30 * time.Second
	e := start(t, cfg)
	c := e.login("demo", "demo")
	if err := c.Stor("hex.txt", strings.NewReader("U-DEMO\nT-x\n#-447123450001\n")); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir("demo"), "results", "hex.txt.report")
	waitFor(t, "the hand-over stored", func() bool {
		_, err := os.Stat(report)
		return err == nil && readReport(t, report)["on"] == "1"
	})
	var subs []map[string]any
	waitFor(t, "the submit_sm logged by the SMSC", func() bool {
		subs = sc.submits()
		return len(subs) >= 1
	})
	if len(subs) != 1 {
		t.Fatalf("%d submit_sm, want 1", len(subs))
	}
	hexID, _ := subs[0]["message_id"].(string)
	n, err := strconv.ParseUint(hexID, 16, 64)
	if err != nil {
		t.Fatalf("SMSC id %q is not hex: %v", hexID, err)
	}
	if hexID == strconv.FormatUint(n, 10) {
		t.Fatalf("id %q reads the same in both bases: the test tests nothing", hexID)
	}
	e.stop()
	start(t, cfg) // bound to the SMSC when it returns
	sc.send(map[string]any{"cmd": "receipt", "id": strconv.FormatUint(n, 10), "stat": "DELIVRD"})
	rep := waitState(t, report, "done")
	if rep["ok"] != "1" {
		t.Errorf("report after a decimal receipt for hex id %s: %v", hexID, rep)
	}
}
