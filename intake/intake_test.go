package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
	"smsdrop/state"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

const drop = "U-DEMO\nT-hello\n#-447123450001\n"

type fixture struct {
	dir   string
	store *state.Store
	in    *Intake
	mu    sync.Mutex
	got   []*state.Batch
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: filepath.Join(t.TempDir(), "demo")}
	var err error
	f.store, err = state.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.in, err = New(Options{Store: f.store, Clock: clock.NewFake(t0), Validity: time.Hour,
		Accounts: []Account{{Login: "demo", Dir: f.dir, Settings: batch.Settings{Code: "DEMO"}, DedupeWindow: time.Hour}},
		OnStored: func(b *state.Batch, _ time.Duration) { f.mu.Lock(); f.got = append(f.got, b); f.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProcessMovesByOutcome(t *testing.T) {
	f := newFixture(t)
	for _, sub := range Folders {
		if fi, err := os.Stat(filepath.Join(f.dir, sub)); err != nil || !fi.IsDir() {
			t.Fatalf("folder %s not created: %v", sub, err)
		}
	}
	tests := []struct {
		name, body, folder string
		state              state.BatchState
	}{
		{"a.txt", drop, "archive", state.Sending},
		{"b.txt", "U-DEMO\nD-2026-12-01\nT-x\n#-447123450001\n", "scheduled", state.Scheduled},
		{"c.txt", "garbage\n", "rejected", state.Rejected},
		{"d.txt", drop, "rejected", state.Duplicate},
	}
	for i, tt := range tests {
		f.write(t, tt.name, tt.body)
		if err := f.in.Process("demo", tt.name); err != nil {
			t.Fatal(err)
		}
		b, err := f.store.Batch(f.got[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.State != tt.state || !b.Moved {
			t.Errorf("%s: state %s moved %v", tt.name, b.State, b.Moved)
		}
		if _, err := os.Stat(filepath.Join(f.dir, tt.folder, b.FileName())); err != nil {
			t.Errorf("%s not in %s/: %v", tt.name, tt.folder, err)
		}
		if _, err := os.Stat(filepath.Join(f.dir, tt.name)); err == nil {
			t.Errorf("%s left in the inbox", tt.name)
		}
	}
	// Gone, hidden or symlinked files are not processed.
	if err := f.in.Process("demo", "gone.txt"); err != nil {
		t.Errorf("gone file: %v", err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(f.dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := f.in.Process("demo", "link.txt"); err != nil {
		t.Errorf("symlink: %v", err)
	}
	if err := f.in.Process("demo", ".hidden"); err == nil {
		t.Error("hidden name processed")
	}
	if len(f.got) != len(tests) {
		t.Errorf("%d batches, want %d", len(f.got), len(tests))
	}
}

// A crash after the batch was stored but before the file left the inbox:
// on restart the file is moved, not processed again (SPEC §9).
func TestStoredButNotMovedIsRecovered(t *testing.T) {
	f := newFixture(t)
	f.write(t, "a.txt", drop)
	sum := sha256.Sum256([]byte(drop))
	p, _ := batch.Parse(strings.NewReader(drop), batch.Settings{Code: "DEMO", Now: func() time.Time { return t0 }})
	b, err := f.store.CreateBatch(state.NewBatch{Account: "demo", Name: "a.txt", Sum: sum[:], Received: t0, Parsed: p, DedupeWindow: time.Hour, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var recovered []*state.Batch
	f.in.o.OnRecovered = func(b *state.Batch) { recovered = append(recovered, b) }
	if err := f.in.Process("demo", "a.txt"); err != nil {
		t.Fatal(err)
	}
	if len(f.got) != 0 || len(recovered) != 1 || recovered[0].ID != b.ID {
		t.Fatalf("processed again: stored %v, recovered %v", f.got, recovered)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "archive", b.FileName())); err != nil {
		t.Errorf("not moved: %v", err)
	}
	if nb, _ := f.store.InboxBatch("demo", "a.txt"); nb != nil {
		t.Error("inbox entry left after the move")
	}
	// Later, a new file under the same name is a new batch (a duplicate of
	// the same bytes here).
	f.write(t, "a.txt", drop)
	if err := f.in.Process("demo", "a.txt"); err != nil {
		t.Fatal(err)
	}
	if len(f.got) != 1 || f.got[0].State != state.Duplicate {
		t.Errorf("re-upload = %v", f.got)
	}
}

func TestSubmitWhileRunningQueuesAgain(t *testing.T) {
	f := newFixture(t)
	j := job{"demo", "a.txt"}
	f.in.jobs[j] = running
	f.in.Submit("demo", "a.txt")
	if f.in.jobs[j] != runningAgain || f.in.queued() != 0 {
		t.Fatalf("a file being processed was queued for a second worker: %v", f.in.jobs[j])
	}
	f.in.done(j)
	if f.in.queued() != 1 || f.in.jobs[j] != queued {
		t.Errorf("not queued again after the first worker: %v", f.in.jobs[j])
	}
	f.in.Submit("demo", "a.txt")
	if f.in.queued() != 1 {
		t.Error("queued twice")
	}
}

// A crash after the move but before the record of it was committed (it
// waits for the next commit during a flood): the restart's Reconcile
// records it, and a new file under the same name, even with the same bytes
// and before Reconcile, is a new batch, never taken for the moved one.
func TestMovedButNotRecorded(t *testing.T) {
	for _, reconcile := range []bool{true, false} {
		f := newFixture(t)
		f.write(t, "a.txt", drop)
		// process, not Process: the move's record is left pending, and a
		// crash loses it.
		if err := f.in.process("demo", "a.txt"); err != nil {
			t.Fatal(err)
		}
		b := f.got[0]
		if nb, _ := f.store.InboxBatch("demo", "a.txt"); nb == nil || nb.ID != b.ID {
			t.Fatalf("the move was recorded at once: %v", nb)
		}
		if _, err := os.Stat(filepath.Join(f.dir, "archive", b.FileName())); err != nil {
			t.Fatalf("not moved: %v", err)
		}
		if reconcile {
			if _, err := f.in.Reconcile(); err != nil {
				t.Fatal(err)
			}
			if nb, _ := f.store.InboxBatch("demo", "a.txt"); nb != nil {
				t.Fatal("Reconcile left the inbox entry")
			}
			if got, _ := f.store.Batch(b.ID); !got.Moved {
				t.Fatal("Reconcile did not record the move")
			}
		}
		f.write(t, "a.txt", drop)
		if err := f.in.Process("demo", "a.txt"); err != nil {
			t.Fatal(err)
		}
		if len(f.got) != 2 || f.got[1].State != state.Duplicate || f.got[1].DuplicateOf != b.ID {
			t.Fatalf("reconcile=%v: the same bytes again = %+v, want a new duplicate batch", reconcile, f.got[1:])
		}
		if _, err := os.Stat(filepath.Join(f.dir, "rejected", f.got[1].FileName())); err != nil {
			t.Fatalf("reconcile=%v: the new file is not in rejected/: %v", reconcile, err)
		}
	}
}

// A power cut can lose the rename out of the inbox while the store kept
// the record of the move (its commit does not make the rename durable).
// The file is then back in the inbox: start-up (Reconcile) moves it again,
// instead of cancelling its batch as if the user had deleted it, and it is
// not processed a second time.
func TestMoveLostInAPowerCut(t *testing.T) {
	const (
		allKO   = "U-DEMO\nT-hello\n#-not a number\n" // done at once: nothing to send
		garbage = "garbage\n"                         // rejected
	)
	for _, tc := range []struct {
		name      string
		upload    string // the file first processed
		back      string // what the inbox holds after the cut; "" nothing
		keep      bool   // the moved file is still in its folder too
		folder    string // where the first file went
		cancel    bool   // its batch is cancelled
		movedBack bool
		later     bool // what the inbox holds was written after the first file was processed
	}{
		{"sending, the same bytes back", drop, drop, false, "archive", false, true, false},
		{"done, the same bytes back", allKO, allKO, false, "archive", false, true, false},
		{"rejected, the same bytes back", garbage, garbage, false, "rejected", false, true, false},
		{"sending, other bytes under that name", drop, drop + "#-447123450002\n", false, "archive", true, false, true},
		{"sending, nothing there", drop, "", false, "archive", true, false, false},
		{"the move kept, the same bytes uploaded again", drop, drop, true, "archive", false, false, true},
		// The user deleted the done batch's file from archive/, and the
		// same bytes were uploaded again while smsdrop was down (a fixed
		// daily reminder): a new file. Before, it was taken for the lost
		// move and never processed.
		{"done, deleted by the user, the same bytes uploaded again", allKO, allKO, false, "archive", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, "a.txt", tc.upload)
			// Written before it was processed (at t0 on the fixture's clock).
			if err := os.Chtimes(filepath.Join(f.dir, "a.txt"), t0, t0.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := f.in.Process("demo", "a.txt"); err != nil {
				t.Fatal(err)
			}
			b := f.got[0]
			if got, _ := f.store.Batch(b.ID); !got.Moved || got.Folder != tc.folder {
				t.Fatalf("batch %+v, want its move to %s/ recorded", got, tc.folder)
			}
			// The cut: the file is gone from its folder, back under its name.
			moved := filepath.Join(f.dir, tc.folder, b.FileName())
			if !tc.keep {
				if err := os.Remove(moved); err != nil {
					t.Fatal(err)
				}
			}
			if tc.back != "" {
				f.write(t, "a.txt", tc.back)
				// A lost move leaves the file as it was when read; a new
				// upload is written later.
				mtime := t0.Add(-time.Minute)
				if tc.later {
					mtime = t0.Add(time.Hour)
				}
				if err := os.Chtimes(filepath.Join(f.dir, "a.txt"), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			cancels, err := f.in.Reconcile()
			if err != nil {
				t.Fatal(err)
			}
			if got := len(cancels) == 1 && cancels[0] == b.ID; got != tc.cancel {
				t.Fatalf("cancels %v, want batch %d cancelled: %v", cancels, b.ID, tc.cancel)
			}
			_, err = os.Lstat(filepath.Join(f.dir, "a.txt"))
			if inInbox, want := err == nil, tc.back != "" && !tc.movedBack; inInbox != want {
				t.Fatalf("file in the inbox: %v, want %v", inInbox, want)
			}
			if tc.movedBack {
				if _, err := os.Lstat(moved); err != nil {
					t.Fatalf("not moved back to %s/: %v", tc.folder, err)
				}
			}
			if err := f.in.Process("demo", "a.txt"); err != nil {
				t.Fatal(err)
			}
			if processed := len(f.got) > 1; processed != (tc.back != "" && !tc.movedBack) {
				t.Fatalf("processed again: %+v", f.got[1:])
			}
		})
	}
}

// An upload can replace an inbox file, or a client delete it, while the
// intake stores the batch it read from it. The move must not take the new
// file for the old one: the bytes read go to the batch's folder, and the
// new file is processed on its own. Before, the new upload was moved under
// the old batch's name and never processed: acknowledged, never sent.
func TestInboxFileChangedWhileStored(t *testing.T) {
	const second = "U-DEMO\nT-second file\n#-447123450002\n"
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, f *fixture)
		want   int // batches in the end
	}{
		{"replaced by an upload", func(t *testing.T, f *fixture) {
			tmp := filepath.Join(f.dir, ".a.txt.upload")
			if err := os.WriteFile(tmp, []byte(second), 0o644); err != nil {
				t.Fatal(err)
			}
			unlock := f.in.LockName("DEMO", "a.txt") // as the FTP server does
			defer unlock()
			if err := os.Rename(tmp, filepath.Join(f.dir, "a.txt")); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"deleted", func(t *testing.T, f *fixture) {
			if err := os.Remove(filepath.Join(f.dir, "a.txt")); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"unchanged", func(*testing.T, *fixture) {}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, "a.txt", drop)
			f.in.testHookStored = func(string) {
				f.in.testHookStored = nil
				tc.change(t, f)
			}
			if err := f.in.Process("demo", "a.txt"); err != nil {
				t.Fatal(err)
			}
			first := f.got[0]
			kept, err := os.ReadFile(filepath.Join(f.dir, "archive", first.FileName()))
			if err != nil || string(kept) != drop {
				t.Fatalf("archive/%s = %q (%v), want the bytes of the first file", first.FileName(), kept, err)
			}
			if got, _ := f.store.Batch(first.ID); !got.Moved {
				t.Error("the move is not recorded")
			}
			// The FTP server's Submit queues the name again after the upload.
			if err := f.in.Process("demo", "a.txt"); err != nil {
				t.Fatal(err)
			}
			if len(f.got) != tc.want {
				t.Fatalf("%d batches, want %d: %+v", len(f.got), tc.want, f.got)
			}
			if tc.want == 2 {
				kept, err := os.ReadFile(filepath.Join(f.dir, "archive", f.got[1].FileName()))
				if err != nil || string(kept) != second {
					t.Fatalf("the second upload's archive/%s = %q (%v)", f.got[1].FileName(), kept, err)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(f.dir, "archive")); len(ents) != tc.want {
				t.Errorf("archive/ holds %d files, want %d (no temporary file left)", len(ents), tc.want)
			}
		})
	}
}

// A scheduled batch's file moves to archive/ when it starts; its record
// keeps the folder the intake put it in. Retention must still find the
// file there: before, Forget looked in scheduled/ and left it for good.
func TestForgetStartedScheduledBatch(t *testing.T) {
	f := newFixture(t)
	f.write(t, "b.txt", "U-DEMO\nD-2026-12-01\nT-x\n#-447123450001\n")
	if err := f.in.Process("demo", "b.txt"); err != nil {
		t.Fatal(err)
	}
	due := time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC)
	started, err := f.store.PromoteDue(due)
	if err != nil || len(started) != 1 {
		t.Fatalf("promote: %v %v", started, err)
	}
	b := started[0]
	if err := f.in.Start(b); err != nil {
		t.Fatal(err)
	}
	arch := filepath.Join(f.dir, "archive", b.FileName())
	if _, err := os.Stat(arch); err != nil {
		t.Fatalf("not started: %v", err)
	}
	if b.Folder != "scheduled" || b.State != state.Sending {
		t.Fatalf("batch %s in %s/, want sending with the intake's folder scheduled", b.State, b.Folder)
	}
	if err := f.in.Forget(b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(arch); !os.IsNotExist(err) {
		t.Fatalf("archive/%s still there after Forget: %v", b.FileName(), err)
	}
}

// One log line per processed file, with its batch id, counts and duration
// (issue 7); in the JSON format the duration has its unit in its name.
func TestFileProcessedLogLine(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	f.in.o.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	f.write(t, "a.txt", "U-DEMO\nT-hello\n#-447123450001\n#-447123450002\n")
	if err := f.in.Process("demo", "a.txt"); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "file processed" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no \"file processed\" line in:\n%s", buf.String())
	}
	want := map[string]any{"account": "demo", "file": "a.txt", "batch": float64(1), "state": "sending",
		"messages": float64(1), "recipients": float64(2), "segments": float64(2), "errors": float64(0)}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v", k, line[k], v)
		}
	}
	if ms, ok := line["took_ms"].(float64); !ok || ms < 0 {
		t.Errorf("took_ms = %v, want milliseconds", line["took_ms"])
	}
}

// Submit never blocks, however many files wait: it runs before an
// upload's 226, and in the workers themselves when a file was submitted
// again while it was processed. With a bounded queue, a flood of one
// client (4,096 files waiting) made every worker block on its own queue
// when it queued a file again, and every upload then waited for its 226
// forever, for every account (found by review).
func TestSubmitNeverBlocks(t *testing.T) {
	f := newFixture(t)
	f.in.o.Workers = 1
	f.write(t, "a.txt", drop)
	hold, held := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	f.in.testHookStored = func(string) {
		f.in.testHookStored = nil
		close(held)
		<-hold
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); f.in.Run(ctx) }()
	defer func() {
		release()
		cancel()
		select { // a stuck worker never returns: fail, do not hang
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return: a worker is stuck")
		}
	}()
	f.in.Submit("demo", "a.txt")
	<-held // the only worker is busy with a.txt
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		f.in.Submit("demo", "a.txt") // queued again when the worker is done
		for i := range 10000 {
			f.in.Submit("demo", fmt.Sprintf("gone-%05d.txt", i)) // processed as already gone
		}
	}()
	select {
	case <-submitted:
	case <-time.After(10 * time.Second):
		t.Fatal("Submit blocked while the worker was busy")
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.in.mu.Lock()
		left := len(f.in.queue) + len(f.in.jobs)
		f.in.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d files still queued or running: the worker is stuck", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(f.got) != 1 {
		t.Errorf("%d batches stored, want 1", len(f.got))
	}
}

// A scheduled file whose D- comes between its store and its move out of
// the inbox (or a crash in between, and a restart after its time): the
// dispatcher starts the batch while the file is still in the inbox. That
// is not a deletion: Start must not fail (the batch was cancelled, with
// nothing deleted), and the move sends the file to archive/ (found by
// review).
func TestStartedBeforeItsMove(t *testing.T) {
	f := newFixture(t)
	f.write(t, "late.txt", "U-DEMO\nD-2026-12-01\nT-x\n#-447123450001\n")
	due := time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC)
	f.in.testHookStored = func(string) {
		f.in.testHookStored = nil
		started, err := f.store.PromoteDue(due)
		if err != nil || len(started) != 1 {
			t.Fatalf("promote: %v %v", started, err)
		}
		if err := f.in.Start(started[0]); err != nil {
			t.Errorf("Start while the file is still in the inbox: %v (the batch would be cancelled)", err)
		}
	}
	if err := f.in.Process("demo", "late.txt"); err != nil {
		t.Fatal(err)
	}
	b := f.got[0]
	if _, err := os.Stat(filepath.Join(f.dir, "archive", b.FileName())); err != nil {
		t.Fatalf("not in archive/: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "scheduled", b.FileName())); err == nil {
		t.Fatal("left in scheduled/")
	}
}

func TestBusyWhileProcessed(t *testing.T) {
	f := newFixture(t)
	f.write(t, "a.txt", drop)
	var during bool
	f.in.testHookStored = func(name string) { during = f.in.Busy("DEMO", name) }
	if f.in.Busy("demo", "a.txt") {
		t.Fatal("busy before processing")
	}
	if err := f.in.Process("demo", "a.txt"); err != nil {
		t.Fatal(err)
	}
	if !during || f.in.Busy("demo", "a.txt") {
		t.Fatalf("busy while stored = %v (want true), after = %v (want false)", during, f.in.Busy("demo", "a.txt"))
	}
	// Two names on one stripe (here the same name twice) take it once:
	// taking it twice would never return.
	done := make(chan struct{})
	go func() {
		unlock := f.in.LockNames("demo", "a.txt", "a.txt", "b.txt")
		unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("LockNames deadlocked on a repeated stripe")
	}
}

// FilesGone finds the scheduled and sending batches whose file was
// deleted unseen, and only those.
func TestFilesGone(t *testing.T) {
	f := newFixture(t)
	f.write(t, "kept.txt", drop)
	f.write(t, "sched.txt", "U-DEMO\nD-2026-12-01\nT-x\n#-447123450001\n")
	f.write(t, "gone.txt", "U-DEMO\nT-gone\n#-447123450001\n")
	f.write(t, "gonesched.txt", "U-DEMO\nD-2026-12-01\nT-gone\n#-447123450001\n")
	for _, name := range []string{"kept.txt", "sched.txt", "gone.txt", "gonesched.txt"} {
		if err := f.in.Process("demo", name); err != nil {
			t.Fatal(err)
		}
	}
	byName := map[string]*state.Batch{}
	for _, b := range f.got {
		byName[b.Name] = b
	}
	for _, rel := range []string{"archive/" + byName["gone.txt"].FileName(), "scheduled/" + byName["gonesched.txt"].FileName()} {
		if err := os.Remove(filepath.Join(f.dir, rel)); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := f.in.FilesGone()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(gone)
	want := []uint64{byName["gone.txt"].ID, byName["gonesched.txt"].ID}
	if !slices.Equal(gone, want) {
		t.Fatalf("FilesGone = %v, want %v", gone, want)
	}
}

// A stored batch whose file cannot be moved (a full disk; here archive/ is
// not a folder) is still announced, so it is sent and answered; the next
// scan moves the file. Before, it waited, unsent and unanswered, for an
// unrelated file to wake the dispatcher.
func TestMoveFailureStillAnnounced(t *testing.T) {
	f := newFixture(t)
	var recovered []uint64
	f.in.o.OnRecovered = func(b *state.Batch) { recovered = append(recovered, b.ID) }
	arch := filepath.Join(f.dir, "archive")
	if err := os.Remove(arch); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(arch, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.write(t, "a.txt", drop)
	if err := os.Chtimes(filepath.Join(f.dir, "a.txt"), t0, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := f.in.Process("demo", "a.txt"); err == nil {
		t.Fatal("the move into a file named archive succeeded")
	}
	if len(f.got) != 1 || f.got[0].State != state.Sending {
		t.Fatalf("announced %+v, want the stored batch, sending", f.got)
	}
	// Its batch is sent: renamed or deleted over FTP meanwhile, the file
	// would be processed twice or sent anyway, so it stays busy.
	if !f.in.Busy("demo", "a.txt") {
		t.Error("a stored file waiting for its move is not busy")
	}
	// The disk is fixed; the next scan offers the file again.
	if err := os.Remove(arch); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(arch, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := f.in.Process("demo", "a.txt"); err != nil {
		t.Fatal(err)
	}
	if len(f.got) != 1 || !slices.Equal(recovered, []uint64{f.got[0].ID}) {
		t.Fatalf("stored %d, recovered %v: want the first batch moved, not stored again", len(f.got), recovered)
	}
	if f.in.Busy("demo", "a.txt") {
		t.Error("busy after its move")
	}
	if _, err := os.Stat(filepath.Join(arch, f.got[0].FileName())); err != nil {
		t.Fatal(err)
	}
}

// A name longer than batch.MaxNameBytes (only a local writer can drop
// one) is left alone: its folder and result names would not fit the file
// system, and its batch would be stored but never moved nor answered.
func TestNameTooLongLeftAlone(t *testing.T) {
	f := newFixture(t)
	name := strings.Repeat("n", batch.MaxNameBytes) + ".txt"
	f.write(t, name, drop)
	if err := f.in.Process("demo", name); err != nil {
		t.Fatal(err)
	}
	if len(f.got) != 0 {
		t.Fatalf("stored %+v", f.got)
	}
	if _, err := os.Stat(filepath.Join(f.dir, name)); err != nil {
		t.Fatal(err)
	}
}

// The same, one step later: the batch starts after the move chose
// scheduled/ and before the file is there. Start waits for the move, then
// finds the file in scheduled/. Before, it found it in neither place
// first, and the file stayed in scheduled/ with its batch sending, where
// deleting it could no longer cancel it.
func TestStartedWhileMoving(t *testing.T) {
	f := newFixture(t)
	f.write(t, "late.txt", "U-DEMO\nD-2026-12-01\nT-x\n#-447123450001\n")
	due := time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC)
	startErr := make(chan error, 1)
	f.in.testHookMoving = func(*state.Batch) {
		f.in.testHookMoving = nil
		started, err := f.store.PromoteDue(due)
		if err != nil || len(started) != 1 {
			t.Errorf("promote: %v %v", started, err)
			startErr <- nil
			return
		}
		go func() { startErr <- f.in.Start(started[0]) }()
		time.Sleep(50 * time.Millisecond) // Start runs now, unless it waits for the move
	}
	if err := f.in.Process("demo", "late.txt"); err != nil {
		t.Fatal(err)
	}
	if err := <-startErr; err != nil {
		t.Fatalf("Start: %v (the batch would be cancelled)", err)
	}
	b := f.got[0]
	if _, err := os.Stat(filepath.Join(f.dir, "archive", b.FileName())); err != nil {
		t.Fatalf("not in archive/: %v", err)
	}
}
