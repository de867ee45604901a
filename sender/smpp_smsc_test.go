package sender

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smsdrop/clock"
)

// smscScript is the test SMSC, relative to this package's directory.
var smscScript = filepath.Join("..", "test", "smsc", "smsc.js")

// smscInstall is what makes the test SMSC runnable.
const smscInstall = "cd test/smsc && npm install --no-audit --no-fund smpp@0.5.1"

// smscRecord is one line the test SMSC wrote.
type smscRecord struct {
	Ev                 string `json:"ev"`
	Port               int    `json:"port"`
	Conn               int    `json:"conn"`
	Command            string `json:"command"`
	CommandStatus      uint32 `json:"command_status"`
	SequenceNumber     uint32 `json:"sequence_number"`
	SystemID           string `json:"system_id"`
	Password           string `json:"password"`
	SourceAddrTON      int    `json:"source_addr_ton"`
	SourceAddrNPI      int    `json:"source_addr_npi"`
	SourceAddr         string `json:"source_addr"`
	DestAddrTON        int    `json:"dest_addr_ton"`
	DestAddrNPI        int    `json:"dest_addr_npi"`
	DestinationAddr    string `json:"destination_addr"`
	EsmClass           int    `json:"esm_class"`
	RegisteredDelivery int    `json:"registered_delivery"`
	DataCoding         int    `json:"data_coding"`
	ShortMessage       string `json:"short_message"` // hex
	MessageID          string `json:"message_id"`
	ValidityPeriod     string `json:"validity_period"` // RFC 3339 when absolute
	RespStatus         uint32 `json:"resp_status"`
	Held               bool   `json:"held"`
	Cmd                string `json:"cmd"`
	Tag                string `json:"tag"`
	Error              string `json:"error"`
	Count              int    `json:"count"`
}

// testSMSC is test/smsc/smsc.js running as a subprocess.
type testSMSC struct {
	t     testing.TB
	addr  string
	stdin io.WriteCloser
	tags  atomic.Int64

	mu   sync.Mutex
	recs []smscRecord
}

// startSMSC runs the test SMSC. Without node or its node_modules the test
// fails, naming the install command, unless SMSDROP_SKIP_SMPP=1.
func startSMSC(t testing.TB, args ...string) *testSMSC {
	t.Helper()
	if os.Getenv("SMSDROP_SKIP_SMPP") == "1" {
		t.Skip("SMSDROP_SKIP_SMPP=1: SMPP tests against the node SMSC skipped")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is needed for the SMPP tests (%v); install Node.js, then run: %s (or set SMSDROP_SKIP_SMPP=1)", err, smscInstall)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(smscScript), "node_modules", "smpp", "package.json")); err != nil {
		t.Fatalf("the test SMSC's node modules are missing (%v); run: %s (or set SMSDROP_SKIP_SMPP=1)", err, smscInstall)
	}
	cmd := exec.Command("node", append([]string{smscScript}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the test SMSC: %v", err)
	}
	m := &testSMSC{t: t, stdin: stdin}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			var r smscRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = smscRecord{Ev: "garbage", Error: sc.Text()}
			}
			m.mu.Lock()
			m.recs = append(m.recs, r)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the SMSC exits when its stdin closes
		exited := make(chan error, 1)
		go func() { <-readDone; exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if stderr.Len() > 0 {
			t.Logf("test SMSC stderr: %s", stderr.String())
		}
	})
	listening := m.waitRecord("the SMSC to listen", func(r smscRecord) bool { return r.Ev == "listening" })
	m.addr = "127.0.0.1:" + strconv.Itoa(listening.Port)
	return m
}

// records returns the records for which keep is true, in order.
func (m *testSMSC) records(keep func(smscRecord) bool) []smscRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []smscRecord
	for _, r := range m.recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// pdus returns the PDUs the SMSC received with the given command.
func (m *testSMSC) pdus(command string) []smscRecord {
	return m.records(func(r smscRecord) bool { return r.Ev == "pdu" && r.Command == command })
}

// waitRecord polls for the first record matching keep.
func (m *testSMSC) waitRecord(what string, keep func(smscRecord) bool) smscRecord {
	m.t.Helper()
	var got smscRecord
	waitFor(m.t, what, func() bool {
		rs := m.records(keep)
		if len(rs) == 0 {
			return false
		}
		got = rs[0]
		return true
	})
	return got
}

// waitPDUs polls until the SMSC received at least n PDUs of command.
func (m *testSMSC) waitPDUs(command string, n int) []smscRecord {
	m.t.Helper()
	var got []smscRecord
	waitFor(m.t, fmt.Sprintf("%d %s at the SMSC", n, command), func() bool {
		got = m.pdus(command)
		return len(got) >= n
	})
	return got
}

// do sends a command and waits for its acknowledgement.
func (m *testSMSC) do(cmd map[string]any) smscRecord {
	m.t.Helper()
	tag := "t" + strconv.FormatInt(m.tags.Add(1), 10)
	cmd["tag"] = tag
	line, err := json.Marshal(cmd)
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.stdin.Write(append(line, '\n')); err != nil {
		m.t.Fatalf("command to the test SMSC: %v", err)
	}
	ack := m.waitRecord("ack of "+string(line), func(r smscRecord) bool { return r.Ev == "ack" && r.Tag == tag })
	if ack.Error != "" {
		m.t.Fatalf("test SMSC: %s: %s", line, ack.Error)
	}
	return ack
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// newTestSMPP returns a driver for m, with fast reconnection, closed at
// the end of the test.
func newTestSMPP(t testing.TB, m *testSMSC, edit func(*SMPPOptions)) *SMPP {
	t.Helper()
	opts := SMPPOptions{Addr: m.addr, SystemID: "smsdrop", Password: "secret", SourceAddr: "smsdrop", Clock: clock.Real{}}
	if edit != nil {
		edit(&opts)
	}
	s, err := NewSMPP(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.backoffMin, s.backoffMax, s.partRetryMin = 20*time.Millisecond, 200*time.Millisecond, 10*time.Millisecond
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// eventLog is an EventHandler that records events; a test may make it
// block or fail.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	calls  int
	hook   func(call int, events []Event) error
}

func (l *eventLog) handle(ctx context.Context, evs []Event) error {
	l.mu.Lock()
	l.calls++
	call, hook := l.calls, l.hook
	l.mu.Unlock()
	if hook != nil {
		if err := hook(call, evs); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, evs...)
	return nil
}

func (l *eventLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// waitEvents polls until the log holds n events.
func (l *eventLog) waitEvents(t testing.TB, n int) []Event {
	t.Helper()
	var got []Event
	waitFor(t, fmt.Sprintf("%d events", n), func() bool {
		got = l.snapshot()
		return len(got) >= n
	})
	return got
}

// run starts s.Run with h until the end of the test, and waits for the
// bind.
func run(t testing.TB, s *SMPP, h EventHandler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "the driver to bind", func() bool { return s.current() != nil })
}
