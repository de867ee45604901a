package watch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"smsdrop/clock"
)

const (
	testSettle = 2 * time.Second
	testRescan = 30 * time.Second
	waitFor    = 10 * time.Second // deadline of eventual conditions, never a measured duration
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// call is one OnFile or OnRemove call, with the fake time it happened at.
type call struct {
	login string
	path  string
	at    time.Time
}

type harness struct {
	t       *testing.T
	clk     *clock.Fake
	w       *Watcher
	dirs    map[string]string
	files   chan call
	removes chan call
	missed  chan struct{}
}

// newHarness makes one account directory per login, with its sub-folders,
// and a Watcher over them that records its calls.
func newHarness(t *testing.T, logins ...string) *harness {
	t.Helper()
	base := t.TempDir()
	h := &harness{
		t:       t,
		clk:     clock.NewFake(t0),
		dirs:    make(map[string]string),
		files:   make(chan call, 100),
		removes: make(chan call, 100),
		missed:  make(chan struct{}, 100),
	}
	for _, login := range logins {
		dir := filepath.Join(base, login)
		for _, sub := range []string{"", DirScheduled, DirArchive} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		h.dirs[login] = dir
	}
	w, err := New(Options{
		Accounts: h.dirs,
		Settle:   testSettle,
		Rescan:   testRescan,
		Clock:    h.clk,
		OnFile: func(login, name string) {
			h.files <- call{login, name, h.clk.Now()}
		},
		OnRemove: func(login, rel string) {
			h.removes <- call{login, rel, h.clk.Now()}
		},
		OnMissed: func() { h.missed <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h
}

// start runs the watcher with real fsnotify until the test ends and waits
// for its initial scan.
func (h *harness) start() {
	h.t.Helper()
	h.run(func(ctx context.Context) error { return h.w.Run(ctx) })
}

// startWithout runs the watcher on event channels that never deliver, to
// play events that fsnotify lost; it returns the error channel to feed.
func (h *harness) startWithout() chan<- error {
	h.t.Helper()
	errs := make(chan error)
	h.run(func(ctx context.Context) error { return h.w.loop(ctx, make(chan fsnotify.Event), errs) })
	return errs
}

func (h *harness) run(f func(context.Context) error) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	h.eventually("initial scan", func() bool { return h.w.scans.Load() >= 1 })
}

func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitCandidate waits until the watcher holds login/name as a candidate of
// the given size with its settle timer armed, so that advancing the fake
// clock next cannot race the watcher's own bookkeeping.
func (h *harness) waitCandidate(login, name string, size int64) {
	h.t.Helper()
	h.eventually("candidate "+login+"/"+name, func() bool {
		got, ok := h.w.candidateSize(login, name)
		return ok && got == size && h.clk.Timers() == 2
	})
}

func (h *harness) isCandidate(login, name string) bool {
	_, ok := h.w.candidateSize(login, name)
	return ok
}

func (h *harness) write(login, name, data string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dirs[login], name), []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) appendTo(login, name, data string) {
	h.t.Helper()
	f, err := os.OpenFile(filepath.Join(h.dirs[login], name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		h.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) next(ch chan call) call {
	h.t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(waitFor):
		h.t.Fatal("gave up waiting for a callback")
		return call{}
	}
}

// expectFiles collects len(want) OnFile calls and compares them as a set of
// "login/name".
func (h *harness) expectFiles(want ...string) []call {
	h.t.Helper()
	var got []string
	var calls []call
	for range want {
		c := h.next(h.files)
		calls = append(calls, c)
		got = append(got, c.login+"/"+c.path)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		h.t.Fatalf("OnFile calls %q, want %q", got, want)
	}
	return calls
}

// expectNoMore checks that no callback is queued; callers make sure first
// that the watcher has handled everything that could have caused one.
func (h *harness) expectNoMore() {
	h.t.Helper()
	select {
	case c := <-h.files:
		h.t.Fatalf("unexpected OnFile(%q, %q)", c.login, c.path)
	case c := <-h.removes:
		h.t.Fatalf("unexpected OnRemove(%q, %q)", c.login, c.path)
	default:
	}
}

func TestIgnored(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"sms.txt", false},
		{"export", false},
		{"a.tmp.txt", false},
		{"partial", false},
		{"x~y", false},
		{".hidden", true},
		{".sms.txt", true},
		{"sms.txt.tmp", true},
		{"sms.TMP", true},
		{"sms.part", true},
		{"sms.Part", true},
		{"sms.filepart", true},
		{"sms.FILEPART", true},
		{"sms.txt~", true},
	}
	for _, tt := range tests {
		if got := Ignored(tt.name); got != tt.want {
			t.Errorf("Ignored(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	noop := func(string, string) {}
	abs := t.TempDir()
	tests := []struct {
		name string
		opts Options
	}{
		{"no OnFile", Options{OnRemove: noop}},
		{"no OnRemove", Options{OnFile: noop}},
		{"negative settle", Options{OnFile: noop, OnRemove: noop, Settle: -1}},
		{"negative rescan", Options{OnFile: noop, OnRemove: noop, Rescan: -1}},
		{"relative dir", Options{OnFile: noop, OnRemove: noop, Accounts: map[string]string{"a": "data/a"}}},
		{"empty login", Options{OnFile: noop, OnRemove: noop, Accounts: map[string]string{"": abs}}},
		{"shared dir", Options{OnFile: noop, OnRemove: noop, Accounts: map[string]string{"a": abs, "b": abs + "/"}}},
		{"nested dir", Options{OnFile: noop, OnRemove: noop, Accounts: map[string]string{"a": abs, "b": filepath.Join(abs, DirArchive)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	h := newHarness(t, "demo")
	h.start()
	if err := h.w.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded, want an error")
	}
}

func TestFileWrittenAtOnceReportedAfterSettle(t *testing.T) {
	h := newHarness(t, "demo")
	h.start()
	h.write("demo", "sms.txt", "U-DEMO\n")
	h.waitCandidate("demo", "sms.txt", 7)
	h.clk.Advance(testSettle)
	c := h.expectFiles("demo/sms.txt")[0]
	if c.at.Before(t0.Add(testSettle)) {
		t.Errorf("reported at %v, before settle ended at %v", c.at, t0.Add(testSettle))
	}
	if h.isCandidate("demo", "sms.txt") {
		t.Error("file still a candidate after being reported")
	}
	h.expectNoMore()
}

func TestFileChangedAfterReportReportedAgain(t *testing.T) {
	h := newHarness(t, "demo")
	h.start()
	h.write("demo", "sms.txt", "U-DEMO\n")
	h.waitCandidate("demo", "sms.txt", 7)
	h.clk.Advance(testSettle)
	h.expectFiles("demo/sms.txt")
	h.appendTo("demo", "sms.txt", "T-late\n")
	h.waitCandidate("demo", "sms.txt", 14)
	h.clk.Advance(testSettle)
	h.expectFiles("demo/sms.txt")
	h.expectNoMore()
}

func TestSlowlyAppendedFileReportedOnceItStops(t *testing.T) {
	h := newHarness(t, "demo")
	h.start()
	step := testSettle * 3 / 4 // each pause is shorter than Settle
	h.write("demo", "export.txt", "U-DEMO\n")
	size := int64(7)
	h.waitCandidate("demo", "export.txt", size)
	var lastWrite time.Time
	for _, more := range []string{"T-hello\n", "#-447700900001\n", "#-447700900002\n"} {
		h.clk.Advance(step)
		lastWrite = h.clk.Now()
		h.appendTo("demo", "export.txt", more)
		size += int64(len(more))
		h.waitCandidate("demo", "export.txt", size)
		h.expectNoMore()
	}
	h.clk.Advance(testSettle)
	c := h.expectFiles("demo/export.txt")[0]
	if c.at.Before(lastWrite.Add(testSettle)) {
		t.Errorf("reported at %v, less than settle after the last write at %v", c.at, lastWrite)
	}
	h.expectNoMore()
}

func TestTemporaryNamesIgnoredUntilRenamed(t *testing.T) {
	for _, name := range []string{".upload", "sms.part", "sms.TMP", "sms.filepart", "sms.txt~"} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "demo")
			h.start()
			h.write("demo", name, "U-DEMO\n")
			// Events arrive in order, so once the later file is a
			// candidate the temporary one has been seen and skipped.
			h.write("demo", "sentinel.txt", "x")
			h.waitCandidate("demo", "sentinel.txt", 1)
			if h.isCandidate("demo", name) {
				t.Fatalf("%q became a candidate", name)
			}
			if err := os.Rename(filepath.Join(h.dirs["demo"], name), filepath.Join(h.dirs["demo"], "final.txt")); err != nil {
				t.Fatal(err)
			}
			h.waitCandidate("demo", "final.txt", 7)
			h.clk.Advance(testSettle)
			h.expectFiles("demo/sentinel.txt", "demo/final.txt")
			h.expectNoMore()
		})
	}
}

func TestSymlinksAndDirectoriesIgnored(t *testing.T) {
	for _, before := range []bool{true, false} {
		name := "after start"
		if before {
			name = "present at start"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "demo")
			outside := filepath.Join(t.TempDir(), "secret.txt")
			if err := os.WriteFile(outside, []byte("U-DEMO\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			inbox := h.dirs["demo"]
			populate := func() {
				if err := os.Symlink(outside, filepath.Join(inbox, "link.txt")); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(inbox, "folder.txt"), 0o755); err != nil {
					t.Fatal(err)
				}
				h.write("demo", "sentinel.txt", "x")
			}
			if before {
				populate()
				h.start()
			} else {
				h.start()
				populate()
			}
			h.waitCandidate("demo", "sentinel.txt", 1)
			for _, n := range []string{"link.txt", "folder.txt"} {
				if h.isCandidate("demo", n) {
					t.Errorf("%q became a candidate", n)
				}
			}
			h.clk.Advance(testSettle)
			h.expectFiles("demo/sentinel.txt")
			h.expectNoMore()
		})
	}
}

func TestFileGoneBeforeSettleNotReported(t *testing.T) {
	tests := []struct {
		name string
		gone func(path string) error
	}{
		{"removed", os.Remove},
		{"moved away", func(path string) error { return os.Rename(path, path+".part") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "demo")
			h.start()
			h.write("demo", "sms.txt", "U-DEMO\n")
			h.waitCandidate("demo", "sms.txt", 7)
			if err := tt.gone(filepath.Join(h.dirs["demo"], "sms.txt")); err != nil {
				t.Fatal(err)
			}
			h.write("demo", "sentinel.txt", "x")
			h.waitCandidate("demo", "sentinel.txt", 1)
			if h.isCandidate("demo", "sms.txt") {
				t.Fatal("file still a candidate after it went")
			}
			h.clk.Advance(testSettle)
			h.expectFiles("demo/sentinel.txt")
			h.expectNoMore()
		})
	}
}

func TestInitialScanAndRescanReportFileStillThere(t *testing.T) {
	h := newHarness(t, "demo")
	h.write("demo", "old.txt", "U-DEMO\n")
	h.start()
	h.waitCandidate("demo", "old.txt", 7)
	h.clk.Advance(testSettle)
	h.expectFiles("demo/old.txt")

	// Nobody took the file away: the next rescan offers it again.
	h.clk.Set(t0.Add(testRescan))
	h.waitCandidate("demo", "old.txt", 7)
	h.clk.Advance(testSettle)
	h.expectFiles("demo/old.txt")
	h.expectNoMore()
}

func TestScanCatchesMissedEvent(t *testing.T) {
	tests := []struct {
		name    string
		trigger func(h *harness, errs chan<- error)
	}{
		{"rescan tick", func(h *harness, _ chan<- error) { h.clk.Advance(testRescan) }},
		{"overflow", func(_ *harness, errs chan<- error) { errs <- fsnotify.ErrEventOverflow }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "demo")
			errs := h.startWithout()
			h.write("demo", "missed.txt", "U-DEMO\n")
			tt.trigger(h, errs)
			h.waitCandidate("demo", "missed.txt", 7)
			h.clk.Advance(testSettle)
			h.expectFiles("demo/missed.txt")
			h.expectNoMore()
		})
	}
}

func TestOnRemove(t *testing.T) {
	tests := []struct {
		name   string
		prep   string // file to create, relative to the account directory
		act    func(dir string) error
		wantRm string
	}{
		{"rm scheduled", "scheduled/12_sms.txt", func(dir string) error {
			return os.Remove(filepath.Join(dir, "scheduled/12_sms.txt"))
		}, "scheduled/12_sms.txt"},
		{"rm archive", "archive/13_sms.txt", func(dir string) error {
			return os.Remove(filepath.Join(dir, "archive/13_sms.txt"))
		}, "archive/13_sms.txt"},
		{"mv scheduled to archive", "scheduled/14_sms.txt", func(dir string) error {
			return os.Rename(filepath.Join(dir, "scheduled/14_sms.txt"), filepath.Join(dir, "archive/14_sms.txt"))
		}, "scheduled/14_sms.txt"},
		{"mv archive out of the account", "archive/15_sms.txt", func(dir string) error {
			return os.Rename(filepath.Join(dir, "archive/15_sms.txt"), filepath.Join(filepath.Dir(dir), "15_sms.txt"))
		}, "archive/15_sms.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "demo")
			dir := h.dirs["demo"]
			if err := os.WriteFile(filepath.Join(dir, tt.prep), []byte("U-DEMO\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			h.start()
			if err := tt.act(dir); err != nil {
				t.Fatal(err)
			}
			c := h.next(h.removes)
			if c.login != "demo" || c.path != tt.wantRm {
				t.Fatalf("OnRemove(%q, %q), want (demo, %q)", c.login, c.path, tt.wantRm)
			}
			h.expectNoMore()
		})
	}
}

func TestAccountsKeptApart(t *testing.T) {
	h := newHarness(t, "alice", "bob")
	for _, login := range []string{"alice", "bob"} {
		p := filepath.Join(h.dirs[login], DirScheduled, "7_"+login+".txt")
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	h.write("alice", "sms.txt", "U-ALICE\n")
	h.write("bob", "sms.txt", "U-BOB\n")
	h.write("bob", "only-bob.txt", "U-BOB\n")
	h.waitCandidate("alice", "sms.txt", 8)
	h.waitCandidate("bob", "sms.txt", 6)
	h.waitCandidate("bob", "only-bob.txt", 6)
	if h.isCandidate("alice", "only-bob.txt") {
		t.Error("bob's file became alice's candidate")
	}
	h.clk.Advance(testSettle)
	h.expectFiles("alice/sms.txt", "bob/sms.txt", "bob/only-bob.txt")

	if err := os.Remove(filepath.Join(h.dirs["bob"], DirScheduled, "7_bob.txt")); err != nil {
		t.Fatal(err)
	}
	c := h.next(h.removes)
	if c.login != "bob" || c.path != "scheduled/7_bob.txt" {
		t.Fatalf("OnRemove(%q, %q), want (bob, scheduled/7_bob.txt)", c.login, c.path)
	}
	h.expectNoMore()
}

// candidateSize reports the size the watcher last saw for a pending
// candidate; tests use it to know that an event has been handled.
func (w *Watcher) candidateSize(login, name string) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.pending[fileKey{login, name}]
	if !ok {
		return 0, false
	}
	return c.size, true
}

// OnMissed runs once the watches are in place and after each overflow,
// not at the periodic rescans: deletions in scheduled/ and archive/ before
// the watches or during an overflow were never reported, and rescans list
// only the inboxes.
func TestOnMissed(t *testing.T) {
	h := newHarness(t, "demo")
	errs := h.startWithout()
	waitMissed := func(when string) {
		t.Helper()
		select {
		case <-h.missed:
		case <-time.After(5 * time.Second):
			t.Fatalf("OnMissed not called %s", when)
		}
	}
	waitMissed("at start")
	h.clk.Advance(testRescan)
	errs <- fsnotify.ErrEventOverflow
	waitMissed("after an overflow")
	select {
	case <-h.missed:
		t.Fatal("OnMissed called at a periodic rescan")
	default:
	}
}
