package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smsdrop/clock"
	"smsdrop/config"
)

// fastClock is a fake clock that a background goroutine moves forward by
// step every few milliseconds, so one-second delays pass at once while a
// test can still jump hours or days.
func fastClock(t *testing.T, start time.Time, step time.Duration) *clock.Fake {
	clk := clock.NewFake(start)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				clk.Advance(step)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return clk
}

func startWith(t *testing.T, cfg *config.Config, clk clock.Clock) *env {
	t.Helper()
	g, err := New(cfg, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cfg: cfg, g: g}
	t.Cleanup(func() { e.stop() })
	return e
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestScheduledBatchSurvivesRestartAndIsSentOnTime(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Accounts[0].Timezone, cfg.Accounts[0].Location = "Europe/Paris", paris
	start := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	e := startWith(t, cfg, clk)
	c := e.login("demo", "demo")
	// 12:30 in Paris is 11:30 UTC in November.
	if err := c.Stor("later.txt", strings.NewReader("U-DEMO\nD-2026-11-23 12:30\nT-see you\n#-447123450123\n")); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir("demo"), "results", "later.txt.report")
	rep := waitState(t, report, "scheduled")
	if rep["scheduled"] != "2026-11-23T12:30:00+01:00" {
		t.Errorf("scheduled: %q", rep["scheduled"])
	}
	if rep["wait"] != "1" || !exists(filepath.Join(e.dir("demo"), "scheduled", "1_later.txt")) {
		t.Errorf("not waiting in scheduled/: %v", rep)
	}
	if rows := readCSV(t, filepath.Join(e.dir("demo"), "results", "later.txt.csv")); rows[0]["status"] != "wait" {
		t.Errorf("csv row = %v", rows[0])
	}
	e.stop()

	clk = fastClock(t, start.Add(3*time.Hour+29*time.Minute+58*time.Second), 5*time.Millisecond)
	e = startWith(t, cfg, clk)
	rep = waitState(t, report, "done")
	if rep["ok"] != "1" {
		t.Errorf("after its time: %v", rep)
	}
	if !exists(filepath.Join(e.dir("demo"), "archive", "1_later.txt")) || exists(filepath.Join(e.dir("demo"), "scheduled", "1_later.txt")) {
		t.Error("file not moved from scheduled/ to archive/ when sending started")
	}
	sentAt, err := time.Parse(time.RFC3339Nano, outbox(t, cfg.Sender.Sim.Outbox)["1-4"]["at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	due := time.Date(2026, 11, 23, 11, 30, 0, 0, time.UTC)
	if sentAt.Before(due) || sentAt.After(due.Add(time.Second)) {
		t.Errorf("sent at %v, want within a second after %v", sentAt, due)
	}
}

func TestDeletingScheduledFileCancels(t *testing.T) {
	cfg := testConfig(t)
	clk := fastClock(t, time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), time.Millisecond)
	e := startWith(t, cfg, clk)
	c := e.login("demo", "demo")
	if err := c.Stor("s.txt", strings.NewReader("U-DEMO\nD-2026-11-24T09:00:00Z\nT-x\n#-447123450123\n#-447123450124\n")); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir("demo"), "results", "s.txt.report")
	waitState(t, report, "scheduled")
	if err := c.Delete("scheduled/1_s.txt"); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, report, "cancelled")
	if rep["ko"] != "2" {
		t.Errorf("cancelled report: %v", rep)
	}
	rows := readCSV(t, filepath.Join(e.dir("demo"), "results", "s.txt.csv"))
	if rows[0]["code"] != "CANCELLED" || rows[1]["status"] != "ko" {
		t.Errorf("rows = %v", rows)
	}
	// A local rm cancels too.
	if err := c.Stor("t.txt", strings.NewReader("U-DEMO\nD-2026-11-24T09:00:00Z\nT-y\n#-447123450123\n")); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(e.dir("demo"), "results", "t.txt.report"), "scheduled")
	if err := os.Remove(filepath.Join(e.dir("demo"), "scheduled", "2_t.txt")); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(e.dir("demo"), "results", "t.txt.report"), "cancelled")
}

func TestDeletingArchiveFileCancelsTheRest(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sender.Rate = 2
	e := start(t, cfg)
	c := e.login("demo", "demo")
	var b strings.Builder
	b.WriteString("U-DEMO\nT-slow\n")
	for i := range 40 {
		b.WriteString("#-4471234501" + string(rune('0'+i/10)) + string(rune('0'+i%10)) + "\n")
	}
	if err := c.Stor("big.txt", strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir("demo"), "results", "big.txt.report")
	waitState(t, report, "sending")
	if err := c.Delete("archive/1_big.txt"); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, report, "cancelled")
	if rep["ko"] == "0" || rep["ok"] == "40" {
		t.Errorf("nothing cancelled: %v", rep)
	}
	rows := readCSV(t, filepath.Join(e.dir("demo"), "results", "big.txt.csv"))
	if last := rows[len(rows)-1]; last["code"] != "CANCELLED" {
		t.Errorf("last row = %v", last)
	}
}

func TestDuplicateAndNameReuse(t *testing.T) {
	e := start(t, testConfig(t))
	c := e.login("demo", "demo")
	res := filepath.Join(e.dir("demo"), "results")
	if err := c.Stor("a.txt", strings.NewReader(seedPersonalised)); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(res, "a.txt.report"), "done")
	if err := c.Stor("copy.txt", strings.NewReader(seedPersonalised)); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, filepath.Join(res, "copy.txt.report"), "duplicate")
	if rep["duplicate_of"] != "1" || !exists(filepath.Join(e.dir("demo"), "rejected", "2_copy.txt")) {
		t.Errorf("duplicate: %v", rep)
	}
	if n := len(outbox(t, e.cfg.Sender.Sim.Outbox)); n != 2 {
		t.Errorf("outbox has %d messages after a duplicate, want 2", n)
	}
	// A new file under the same name: the older results are kept aside.
	if err := c.Stor("a.txt", strings.NewReader(strings.Replace(seedPersonalised, "JONES", "JONAS", 1))); err != nil {
		t.Fatal(err)
	}
	// a.txt.report is missing for a moment while batch 1's is renamed
	// aside: not an error, so not readReport, which fails on it.
	waitFor(t, "a.txt.report of batch 3", func() bool {
		b, err := os.ReadFile(filepath.Join(res, "a.txt.report"))
		return err == nil && strings.HasPrefix(string(b), "batch: 3\n") && strings.Contains(string(b), "\nstate: done\n")
	})
	old := readReport(t, filepath.Join(res, "a.txt.1.report"))
	if old["batch"] != "1" || !exists(filepath.Join(res, "a.txt.1.csv")) {
		t.Errorf("old results not kept: %v", old)
	}
}

func TestRepliesAndOptOut(t *testing.T) {
	e := start(t, testConfig(t))
	c := e.login("demo", "demo")
	res := filepath.Join(e.dir("demo"), "results")
	if err := c.Stor("r.txt", strings.NewReader("U-DEMO\nT-Reply please\n#-447123450015\n#-447123450016\n#-447123450013\n#-447123450014\n")); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, filepath.Join(res, "r.txt.report"), "done")
	if rep["rep"] != "2" || rep["ko"] != "1" || rep["no"] != "1" {
		t.Errorf("report: %v", rep)
	}
	rows := readCSV(t, filepath.Join(res, "r.txt.csv"))
	if rows[0]["reply"] != "OK" || rows[1]["reply"] != "STOP" || rows[0]["status"] != "rep" {
		t.Errorf("rows = %v", rows)
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir("demo"), "replies"))
	var day string
	for _, en := range ents {
		if strings.HasSuffix(en.Name(), ".csv") && !strings.HasPrefix(en.Name(), ".") {
			day = en.Name()
		}
	}
	if day == "" {
		t.Fatal("no replies/YYYY-MM-DD.csv")
	}
	replies := readCSV(t, filepath.Join(e.dir("demo"), "replies", day))
	if len(replies) != 2 || replies[1]["from"] != "+447123450016" || replies[1]["text"] != "STOP" || replies[1]["message_id"] != "1-4" || replies[1]["batch"] != "1" {
		t.Errorf("replies = %v", replies)
	}
	// STOP opted the number out: a later file does not send to it.
	if err := c.Stor("later.txt", strings.NewReader("U-DEMO\nT-Again\n#-447123450016\n#-447123450017\n")); err != nil {
		t.Fatal(err)
	}
	rep = waitState(t, filepath.Join(res, "later.txt.report"), "done")
	if rep["optout"] != "1" || rep["ok"] != "1" || rep["ko"] != "1" {
		t.Errorf("later report: %v", rep)
	}
	if rows := readCSV(t, filepath.Join(res, "later.txt.csv")); rows[0]["code"] != "OPTED_OUT" {
		t.Errorf("later rows = %v", rows)
	}
}

func TestLongMessage(t *testing.T) {
	e := start(t, testConfig(t))
	c := e.login("demo", "demo")
	if err := c.Stor("long.txt", strings.NewReader("U-DEMO\nT-"+strings.Repeat("a", 200)+"\n#-447123450123\n#-447123450013\n")); err != nil {
		t.Fatal(err)
	}
	rep := waitState(t, filepath.Join(e.dir("demo"), "results", "long.txt.report"), "done")
	if rep["segments"] != "4" || rep["ok"] != "1" || rep["ko"] != "1" {
		t.Errorf("report: %v", rep)
	}
	if rows := readCSV(t, filepath.Join(e.dir("demo"), "results", "long.txt.csv")); rows[0]["segments"] != "2" {
		t.Errorf("rows = %v", rows)
	}
}

func TestRetentionSweep(t *testing.T) {
	cfg := testConfig(t)
	start := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	clk := fastClock(t, start, 10*time.Millisecond)
	e := startWith(t, cfg, clk)
	c := e.login("demo", "demo")
	if err := c.Stor("old.txt", strings.NewReader("U-DEMO\nT-x\n#-447123450015\n")); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir("demo"), "results", "old.txt.report")
	waitState(t, report, "done")
	waitFor(t, "replies file", func() bool {
		ents, _ := os.ReadDir(filepath.Join(e.dir("demo"), "replies"))
		return len(ents) > 0
	})
	if err := c.Stor("bad.txt", strings.NewReader("nonsense\n")); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(e.dir("demo"), "results", "bad.txt.report"), "rejected")
	clk.Advance(cfg.Processing.Retention + 48*time.Hour)
	if err := e.g.Sweep(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{report, filepath.Join(e.dir("demo"), "results", "old.txt.csv"),
		filepath.Join(e.dir("demo"), "archive", "1_old.txt"), filepath.Join(e.dir("demo"), "rejected", "2_bad.txt")} {
		if exists(p) {
			t.Errorf("%s survived retention", p)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir("demo"), "replies")); len(ents) != 0 {
		t.Errorf("replies survived retention: %v", ents)
	}
	if _, err := e.g.Store().Batch(1); err == nil {
		t.Error("batch record survived retention")
	}
}

func TestDispatchMinTick(t *testing.T) {
	tests := []struct {
		rate float64
		want time.Duration
	}{
		{0, 10 * time.Millisecond}, // unlimited: a flood's pace
		{20, 250 * time.Millisecond},
		{100, 50 * time.Millisecond},
		{1000, 10 * time.Millisecond},
		{1, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := dispatchMinTick(tt.rate); got != tt.want {
			t.Errorf("dispatchMinTick(%v) = %v, want %v", tt.rate, got, tt.want)
		}
	}
}

// A file deleted from archive/ while smsdrop is down cancels the rest of
// its batch at the next start, before anything more of it is handed over.
func TestDeletedWhileStoppedCancelsBeforeSending(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sender.Rate = 2
	e := start(t, cfg)
	c := e.login("demo", "demo")
	if err := c.Stor("big.txt", strings.NewReader(dropFile("DEMO", "stopped", 0, 40))); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(e.dir("demo"), "results", "big.txt.report")
	waitState(t, report, "sending")
	e.stop()
	before := len(outbox(t, cfg.Sender.Sim.Outbox))
	if err := os.Remove(filepath.Join(e.dir("demo"), "archive", "1_big.txt")); err != nil {
		t.Fatal(err)
	}
	start(t, cfg)
	rep := waitState(t, report, "cancelled")
	if after := len(outbox(t, cfg.Sender.Sim.Outbox)); after != before {
		t.Errorf("%d more messages handed over after the restart, want none", after-before)
	}
	if rep["wait"] != "0" {
		t.Errorf("report %v", rep)
	}
}

// A script that reads NAME.report right after its upload of a reused name
// finds no report or its own batch's, never the previous file's: before,
// the previous final report stayed there for the milliseconds before the
// new batch's results were written (SPEC §5: the older results are "first
// renamed"), and half the reads took it for this upload's outcome.
func TestReusedNameNeverShowsThePreviousReport(t *testing.T) {
	e := start(t, testConfig(t))
	c := e.login("demo", "demo")
	res := filepath.Join(e.dir("demo"), "results")
	for i := range 8 {
		body := fmt.Sprintf("U-DEMO\nT-run %d\n#-447123450001\n", i)
		if err := c.Stor("daily.txt", strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(res, "daily.txt.report"))
		if err == nil && !strings.HasPrefix(string(b), fmt.Sprintf("batch: %d\n", i+1)) {
			t.Fatalf("upload %d: right after its 226, daily.txt.report is another batch's:\n%s", i+1, b)
		}
		waitFor(t, "daily.txt.report done", func() bool {
			b, err := os.ReadFile(filepath.Join(res, "daily.txt.report"))
			return err == nil && strings.HasPrefix(string(b), fmt.Sprintf("batch: %d\n", i+1)) && strings.Contains(string(b), "\nstate: done\n")
		})
	}
	for id := 1; id < 8; id++ {
		old := readReport(t, filepath.Join(res, fmt.Sprintf("daily.txt.%d.report", id)))
		if old["batch"] != fmt.Sprint(id) || old["state"] != "done" {
			t.Errorf("daily.txt.%d.report: %v", id, old)
		}
	}
}

// The same while the previous file of that name is still being processed
// when the new one lands: the previous file's report, written after the
// new upload's 226, goes aside too.
func TestReusedNameWhilePreviousProcessed(t *testing.T) {
	cfg := testConfig(t)
	cfg.Accounts[0].MaxRecipients = 20000
	e := start(t, cfg)
	c := e.login("demo", "demo")
	res := filepath.Join(e.dir("demo"), "results")
	if err := c.Stor("daily.txt", strings.NewReader(dropFile("DEMO", "big", 0, 20000))); err != nil {
		t.Fatal(err)
	}
	if err := c.Stor("daily.txt", strings.NewReader("U-DEMO\nT-small\n#-447123450001\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(res, "daily.txt.report"))
		if err == nil {
			// The second file's (one recipient). It is batch 2, or batch
			// 1 when it replaced the first before that was processed.
			if !strings.Contains(string(b), "\nrecipients: 1\n") {
				t.Fatalf("after the second upload's 226, daily.txt.report (%d bytes) is:\n%.60q", len(b), b)
			}
			if strings.Contains(string(b), "\nstate: done\n") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("batch 2 never done")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
