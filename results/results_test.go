package results

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
	"smsdrop/state"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type fixture struct {
	dir   string
	store *state.Store
	clk   *clock.Fake
	w     *Writer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), clk: clock.NewFake(t0)}
	for _, d := range []string{"results", "replies"} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	f.store, err = state.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	paris, _ := time.LoadLocation("Europe/Paris")
	f.w = New(Options{Store: f.store, Clock: f.clk, Accounts: []Account{{Login: "demo", Dir: f.dir, Location: paris}}})
	return f
}

func (f *fixture) add(t *testing.T, name, body string) *state.Batch {
	t.Helper()
	p, err := batch.Parse(strings.NewReader(body), batch.Settings{Code: "DEMO", Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.store.CreateBatch(state.NewBatch{Account: "demo", Name: name, Sum: []byte(body), Received: f.clk.Now(),
		Parsed: p, DedupeWindow: time.Hour, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "results", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRendering(t *testing.T) {
	f := newFixture(t)
	b := f.add(t, "sms.txt", "U-DEMO\nD-2026-11-23T12:30:00Z\nT-Hello #1#\n#-447123450001;Ann\n#-12;Bob\n")
	if _, err := f.w.WriteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	wantReport := `batch: 1
file: sms.txt
account: demo
received: 2026-11-23T10:00:00Z
state: scheduled
scheduled: 2026-11-23T13:30:00+01:00
messages: 1
recipients: 2
segments: 1
wait: 1
on: 0
ok: 0
ko: 1
rep: 0
no: 0
optout: 0
`
	if got := f.read(t, "sms.txt.report"); got != wantReport {
		t.Errorf("report:\n%s\nwant:\n%s", got, wantReport)
	}
	wantCSV := "line,message,input,recipient,message_id,status,code,segments,encoding,updated,reply\r\n" +
		"4,1,447123450001,+447123450001,1-4,wait,,1,gsm,2026-11-23T10:00:00Z,\r\n" +
		"5,1,12,,,ko,INVALID_NUMBER,1,gsm,2026-11-23T10:00:00Z,\r\n"
	if got := f.read(t, "sms.txt.csv"); got != wantCSV {
		t.Errorf("csv:\n%q\nwant:\n%q", got, wantCSV)
	}
	ents, _ := os.ReadDir(filepath.Join(f.dir, "results"))
	if len(ents) != 2 {
		t.Errorf("temporary files left: %v", ents)
	}
	// A rejected file gets a report with its errors and no CSV; an older
	// accepted batch of the same name keeps its results aside. Nothing is
	// sent: every recipient line counts as ko, so the six status counts
	// add up to recipients (SPEC §7), as in a duplicate's report.
	bad := f.add(t, "sms.txt", "U-DEMO\nD-2017-13-45\nT-x\n#-447123450001\n")
	if _, err := f.w.WriteBatch(bad.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.read(t, "sms.txt.report"); !strings.Contains(got, "state: rejected\n") || !strings.Contains(got, "error: line 2: ") ||
		!strings.Contains(got, "recipients: 1\n") || !strings.Contains(got, "wait: 0\non: 0\nok: 0\nko: 1\nrep: 0\nno: 0\noptout: 0\n") {
		t.Errorf("rejected report:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "results", "sms.txt.csv")); err == nil {
		t.Error("rejected file has a CSV")
	}
	if got := f.read(t, "sms.txt.1.report"); !strings.HasPrefix(got, "batch: 1\n") {
		t.Errorf("older report not kept: %s", got)
	}
	// The older batch keeps writing under its own name.
	if _, err := f.w.WriteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.read(t, "sms.txt.report"); !strings.HasPrefix(got, "batch: 2\n") {
		t.Errorf("older batch overwrote the newer report: %s", got)
	}
}

func TestAtMostOnceASecondAndFinalAtOnce(t *testing.T) {
	tests := []struct {
		name            string
		rowsPerInterval int
		gap             time.Duration // between two writes of the 2-recipient batch
	}{
		{"small batch: a second", 0, time.Second},
		// One more second per RowsPerInterval recipients: 1 + 2/1.
		{"big batch: longer", 1, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.w = New(Options{Store: f.store, Clock: f.clk, Accounts: []Account{{Login: "demo", Dir: f.dir}}, RowsPerInterval: tt.rowsPerInterval})
			testInterval(t, f, tt.gap)
		})
	}
}

func testInterval(t *testing.T, f *fixture, gap time.Duration) {
	t.Helper()
	b := f.add(t, "a.txt", "U-DEMO\nT-x\n#-447123450001\n#-447123450002\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	report := filepath.Join(f.dir, "results", "a.txt.report")
	wait := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, _ := os.ReadFile(report)
			if cond(string(got)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s; report:\n%s", what, got)
			}
			time.Sleep(time.Millisecond)
		}
	}
	f.w.Changed(b.ID)
	wait("first write at once", func(s string) bool { return strings.Contains(s, "wait: 2\n") })
	// As the dispatcher does: the final batches, then all that changed.
	commit := func(tk *state.Tick) {
		tk.Now = f.clk.Now()
		res, err := f.store.Commit(tk)
		if err != nil {
			t.Fatal(err)
		}
		f.w.Final(res.Final...)
		f.w.Changed(res.Changed...)
	}
	k1, k2 := state.Key{Batch: b.ID, Line: 3}, state.Key{Batch: b.ID, Line: 4}
	commit(&state.Tick{Handovers: []state.Key{k1, k2}})
	commit(&state.Tick{Outcomes: []state.Outcome{{Key: k1, PartIDs: []string{"p1"}}, {Key: k2, PartIDs: []string{"p2"}}}})
	// Inside the interval: not written again yet.
	for at := time.Duration(0); at < gap; at += time.Second {
		f.clk.Advance(min(time.Second, gap-at) - time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		if got, _ := os.ReadFile(report); !strings.Contains(string(got), "wait: 2\n") {
			t.Fatalf("rewritten %v after the first write, before %v:\n%s", at+time.Second-time.Millisecond, gap, got)
		}
		f.clk.Advance(time.Millisecond)
	}
	wait("second write once the interval is over", func(s string) bool { return strings.Contains(s, "on: 2\n") })
	// The final state is written at once, inside the interval.
	commit(&state.Tick{Receipts: []state.Receipt{{PartID: "p1", Status: batch.StatusOK}, {PartID: "p2", Status: batch.StatusOK}}})
	wait("final state at once", func(s string) bool { return strings.Contains(s, "state: done\n") })
	wait("final results recorded", func(string) bool {
		got, _ := f.store.Batch(b.ID)
		return got.ResultsFinal
	})
}

func TestReplyFiles(t *testing.T) {
	f := newFixture(t)
	b := f.add(t, "a.txt", "U-DEMO\nT-x\n#-447123450001\n")
	k := state.Key{Batch: b.ID, Line: 3}
	for _, tk := range []*state.Tick{
		{Handovers: []state.Key{k}},
		{Outcomes: []state.Outcome{{Key: k, PartIDs: []string{"p"}}}},
		{Replies: []state.IncomingReply{{From: "+447123450001", Text: "Yes, \"thanks\"", At: t0.Add(time.Minute)}}},
	} {
		tk.Now = t0
		if _, err := f.store.Commit(tk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.w.WriteReplies("demo", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(f.dir, "replies", "2026-11-23.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := "received,from,batch,line,message_id,text\r\n2026-11-23T10:01:00Z,+447123450001,1,3,1-3,\"Yes, \"\"thanks\"\"\"\r\n"
	if string(got) != want {
		t.Errorf("replies:\n%q\nwant\n%q", got, want)
	}
	if err := f.w.SweepReplies(t0.AddDate(0, 0, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "replies", "2026-11-23.csv")); err == nil {
		t.Error("old reply file not swept")
	}
}

// A reply file is rewritten whole, so it is written at most once a second,
// except before a report of its account: a report never counts a reply
// the reply file does not show.
func TestReplyFilesPaced(t *testing.T) {
	f := newFixture(t)
	b := f.add(t, "a.txt", "U-DEMO\nT-x\n#-447123450001\n#-447123450002\n#-447123450003\n")
	var keys []state.Key
	var outs []state.Outcome
	for line := 3; line <= 5; line++ {
		k := state.Key{Batch: b.ID, Line: line}
		keys = append(keys, k)
		outs = append(outs, state.Outcome{Key: k, PartIDs: []string{fmt.Sprint("p", line)}})
	}
	commit := func(tk *state.Tick) {
		t.Helper()
		tk.Now = f.clk.Now()
		res, err := f.store.Commit(tk)
		if err != nil {
			t.Fatal(err)
		}
		f.w.RepliesChanged(res.ReplyAccounts...)
	}
	commit(&state.Tick{Handovers: keys})
	commit(&state.Tick{Outcomes: outs})
	reply := func(n int) {
		t.Helper()
		commit(&state.Tick{Replies: []state.IncomingReply{{From: fmt.Sprint("+44712345000", n), Text: "yes", At: f.clk.Now()}}})
	}
	file := filepath.Join(f.dir, "replies", "2026-11-23.csv")
	rows := func() int {
		got, _ := os.ReadFile(file)
		return strings.Count(string(got), "\n") - 1
	}
	waitRows := func(what string, n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); rows() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d rows, want %d", what, rows(), n)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	reply(1)
	waitRows("first reply at once", 1)
	reply(2)
	time.Sleep(20 * time.Millisecond)
	if n := rows(); n != 1 {
		t.Fatalf("reply file rewritten within the second: %d rows", n)
	}
	f.clk.Advance(time.Second)
	waitRows("second reply after a second", 2)
	reply(3)
	f.w.Changed(b.ID)
	report := filepath.Join(f.dir, "results", "a.txt.report")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		got, _ := os.ReadFile(report)
		if strings.Contains(string(got), "rep: 3\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report never counted 3 replies:\n%s", got)
		}
	}
	if n := rows(); n != 3 {
		t.Fatalf("the report counts 3 replies, the reply file shows %d", n)
	}
}

// A change to a batch whose final result files were on disk and recorded so
// (a late reply), committed, then a kill -9 before the writer renders it:
// start-up renders it again. Before, the record stayed and the files kept
// "rep: 0" for good.
func TestLateReplyAfterResultsFinal(t *testing.T) {
	f := newFixture(t)
	b := f.add(t, "sms.txt", "U-DEMO\nT-Hello\n#-447123450015\n")
	k := state.Key{Batch: b.ID, Line: 3}
	now := f.clk.Now()
	res, err := f.store.Commit(&state.Tick{Now: now, Handovers: []state.Key{k}})
	if err != nil || len(res.Handed) != 1 {
		t.Fatal(err, res.Handed)
	}
	if _, err := f.store.Commit(&state.Tick{Now: now, Outcomes: []state.Outcome{{Key: k, PartIDs: []string{"p1"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Commit(&state.Tick{Now: now, Receipts: []state.Receipt{{PartID: "p1", Status: batch.StatusOK, At: now}}}); err != nil {
		t.Fatal(err)
	}
	// Final results written and made durable, as Run does.
	if err := f.w.Startup(); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.Batch(b.ID); !got.ResultsFinal || got.State != state.Done {
		t.Fatalf("setup: %+v", got)
	}
	// Hours later a reply comes; the tick commits; kill -9 before the writer writes.
	if _, err := f.store.Commit(&state.Tick{Now: now, Replies: []state.IncomingReply{{From: "+447123450015", Account: "demo", Text: "OK", At: now}}}); err != nil {
		t.Fatal(err)
	}
	// Restart: a new writer, Startup.
	w2 := New(Options{Store: f.store, Clock: f.clk, Accounts: f.w.o.Accounts})
	if err := w2.Startup(); err != nil {
		t.Fatal(err)
	}
	rep := f.read(t, "sms.txt.report")
	csv := f.read(t, "sms.txt.csv")
	if !strings.Contains(rep, "rep: 1\n") || !strings.Contains(csv, ",rep,") {
		t.Errorf("store says rep, files after restart say:\n%s\n%s", rep, csv)
	}
}

// Cancelled while a hand-over is in flight, its final files on disk and
// recorded so; a kill -9 before the outcome is stored, and Recover turns
// the hand-over into no/UNCONFIRMED: start-up renders the files again.
func TestRecoverAfterCancelResultsFinal(t *testing.T) {
	f := newFixture(t)
	b := f.add(t, "sms.txt", "U-DEMO\nT-Hello\n#-447123450001\n#-447123450002\n")
	now := f.clk.Now()
	k := state.Key{Batch: b.ID, Line: 3}
	if res, err := f.store.Commit(&state.Tick{Now: now, Handovers: []state.Key{k}}); err != nil || len(res.Handed) != 1 {
		t.Fatal(err)
	}
	if _, err := f.store.Commit(&state.Tick{Now: now, Cancels: []uint64{b.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := f.w.Startup(); err != nil { // final files written + MarkResultsFinal
		t.Fatal(err)
	}
	// kill -9 here; restart as gateway.Start does: Recover, then results Startup.
	changed, err := f.store.Recover(now)
	if err != nil || len(changed) != 1 {
		t.Fatal(err, changed)
	}
	w2 := New(Options{Store: f.store, Clock: f.clk, Accounts: f.w.o.Accounts})
	if err := w2.Startup(); err != nil {
		t.Fatal(err)
	}
	if rep := f.read(t, "sms.txt.report"); !strings.Contains(rep, "wait: 0\n") {
		t.Errorf("cancelled batch's report after restart:\n%s", rep)
	}
}

// A write that fails (a full disk; here a folder has the report's name) is
// tried again: a final batch changes no more, so before, its report stayed
// missing or stale until a restart.
func TestFailedWriteTriedAgain(t *testing.T) {
	f := newFixture(t)
	b := f.add(t, "bad.txt", "garbage\n") // rejected: final at once
	blocker := filepath.Join(f.dir, "results", "bad.txt.report")
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	f.w.Final(b.ID)
	deadline := time.Now().Add(10 * time.Second)
	for retry := false; !retry; {
		f.w.mu.Lock()
		_, retry = f.w.next[b.ID]
		retry = retry && f.w.pending[b.ID]
		f.w.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the failed write is not planned again")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Remove(blocker); err != nil { // the disk has room again
		t.Fatal(err)
	}
	for {
		if fi, err := os.Stat(blocker); err == nil && fi.Mode().IsRegular() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("report never written after a transient failure")
		}
		f.clk.Advance(time.Second)
		time.Sleep(5 * time.Millisecond)
	}
}

// SetAside makes way for a new upload of a name: the batches older than
// it (one written, one stored but not written yet, one still being
// processed when the upload came) write to NAME.<id>.*, and NAME.report is
// the new upload's once written, never moved aside. Before, SetAside moved
// only a report on disk, after the 226: an older batch written later took
// NAME.report, and a new batch written before SetAside lost its report.
func TestSetAsideForANewUpload(t *testing.T) {
	report := func(f *fixture) string {
		b, err := os.ReadFile(filepath.Join(f.dir, "results", "d.txt.report"))
		if err != nil {
			return ""
		}
		return strings.SplitN(string(b), "\n", 2)[0]
	}
	write := func(t *testing.T, f *fixture, b *state.Batch) {
		t.Helper()
		if _, err := f.w.WriteBatch(b.ID); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("written, then stored but not written", func(t *testing.T) {
		f := newFixture(t)
		write(t, f, f.add(t, "d.txt", "U-DEMO\nT-one\n#-447123450001\n"))
		two := f.add(t, "d.txt", "U-DEMO\nT-two\n#-447123450001\n")
		f.clk.Advance(time.Second)
		f.w.SetAside("demo", "d.txt", func() bool { return false }) // the third upload
		if got := report(f); got != "" {
			t.Fatalf("d.txt.report right after SetAside: %q, want none", got)
		}
		write(t, f, two)
		if got := report(f); got != "" {
			t.Fatalf("the older batch 2 took d.txt.report: %q", got)
		}
		f.clk.Advance(time.Second)
		write(t, f, f.add(t, "d.txt", "U-DEMO\nT-three\n#-447123450001\n"))
		if got := report(f); got != "batch: 3" {
			t.Fatalf("d.txt.report = %q, want batch 3", got)
		}
		for _, name := range []string{"d.txt.1.report", "d.txt.2.report"} {
			if _, err := os.Stat(filepath.Join(f.dir, "results", name)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	t.Run("the previous file still being processed", func(t *testing.T) {
		f := newFixture(t)
		received := f.clk.Now() // its processing began
		f.clk.Advance(time.Second)
		f.w.SetAside("demo", "d.txt", func() bool { return true })
		f.clk.Advance(time.Second)
		p, _ := batch.Parse(strings.NewReader("U-DEMO\nT-one\n#-447123450001\n"), batch.Settings{Code: "DEMO", Now: f.clk.Now})
		one, err := f.store.CreateBatch(state.NewBatch{Account: "demo", Name: "d.txt", Sum: []byte("1"), Received: received,
			Parsed: p, DedupeWindow: time.Hour, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		write(t, f, one)
		if got := report(f); got != "" {
			t.Fatalf("the previous file's batch took d.txt.report: %q", got)
		}
		write(t, f, f.add(t, "d.txt", "U-DEMO\nT-two\n#-447123450001\n"))
		if got := report(f); got != "batch: 2" {
			t.Fatalf("d.txt.report = %q, want batch 2", got)
		}
	})
}
