package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Concurrent batches share commits, yet each gets its own id and record.
func TestGroupCommitConcurrentBatches(t *testing.T) {
	s := openTest(t)
	const n = 64
	ids := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, err := s.CreateBatch(NewBatch{Account: "demo", Name: fmt.Sprintf("f%d.txt", i), Sum: []byte{byte(i)},
				Received: t0, Parsed: parsed(1, t0, false), DedupeWindow: 0, Validity: 0})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = b.ID
			if err := s.MarkMoved(b.ID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i, id := range ids {
		if id == 0 || seen[id] {
			t.Fatalf("file %d got id %d (ids %v)", i, id, ids)
		}
		seen[id] = true
		b, err := s.Batch(id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Name != fmt.Sprintf("f%d.txt", i) || !b.Moved {
			t.Fatalf("batch %d = %s moved=%v, want f%d.txt moved", id, b.Name, b.Moved, i)
		}
		if ib, err := s.InboxBatch("demo", b.Name); err != nil || ib != nil {
			t.Fatalf("inbox entry of %s left: %v %v", b.Name, ib, err)
		}
	}
}

// One failing update in a shared transaction fails alone.
func TestGroupCommitFailureIsolated(t *testing.T) {
	s := openTest(t)
	key := func(i int) []byte { return []byte(fmt.Sprintf("group-test-%d", i)) }
	boom := errors.New("boom")
	g := &s.group
	// Hold the group busy so that the requests below queue up together.
	g.mu.Lock()
	g.busy = true
	g.mu.Unlock()
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			errs[i] = g.update(func(tx *bolt.Tx) error {
				if i == 2 {
					return boom
				}
				return tx.Bucket(bMeta).Put(key(i), []byte{1})
			})
		})
	}
	for {
		g.mu.Lock()
		queued := len(g.queue)
		g.mu.Unlock()
		if queued == len(errs) {
			break
		}
		runtime.Gosched()
	}
	g.mu.Lock()
	reqs := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.run(reqs)
	g.mu.Lock()
	g.busy = false
	g.mu.Unlock()
	wg.Wait()
	for i, err := range errs {
		if (i == 2) != errors.Is(err, boom) {
			t.Errorf("update %d: err %v", i, err)
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		for i := range errs {
			if got := tx.Bucket(bMeta).Get(key(i)) != nil; got != (i != 2) {
				t.Errorf("update %d stored = %v", i, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A later move rides on the next commit, or on FlushMoved when none comes.
func TestMarkMovedLater(t *testing.T) {
	s := openTest(t)
	nb := func(name string) NewBatch {
		return NewBatch{Account: "demo", Name: name, Sum: []byte(name), Received: t0, Parsed: parsed(1, t0, false)}
	}
	a, err := s.CreateBatch(nb("a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	s.MarkMovedLater(a.ID)
	if got, _ := s.InboxBatch("demo", "a.txt"); got == nil {
		t.Fatal("recorded before any commit")
	}
	if _, err := s.CreateBatch(nb("b.txt")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.InboxBatch("demo", "a.txt"); got != nil {
		t.Fatal("the next commit did not take the pending move")
	}
	if b, _ := s.Batch(a.ID); !b.Moved {
		t.Fatal("batch not marked moved")
	}
	s.MarkMovedLater(2)
	if err := s.FlushMoved(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.InboxBatch("demo", "b.txt"); got != nil {
		t.Fatal("FlushMoved did not commit the pending move")
	}
	s.MarkMovedLater(999) // unknown batch: dropped, and harms no commit
	if _, err := s.CreateBatch(nb("c.txt")); err != nil {
		t.Fatal(err)
	}
}

func TestGroupCommitStreaming(t *testing.T) {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name     string
		arrivals []int // ms
		now      int
		want     bool
	}{
		{"nothing yet", nil, 0, false},
		{"fewer writes than a stream", []int{0, 1, 2}, 3, false},
		{"four within the window", []int{0, 2, 4, 6}, 7, true},
		{"four, but the first too long ago", []int{0, 4, 8, 12}, 13, false},
		{"one upload's writes, spaced by the dispatcher", []int{0, 1, 11, 21, 31}, 32, false},
		{"a flood", []int{0, 1, 2, 3, 4, 5, 6, 7}, 8, true},
		{"a flood that stopped", []int{0, 1, 2, 3}, 50, false},
	}
	for _, tt := range tests {
		var g groupCommit
		for _, a := range tt.arrivals {
			g.arrive(ms(a))
		}
		if got := g.streaming(ms(tt.now)); got != tt.want {
			t.Errorf("%s: streaming = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// While writes stream in, a commit lingers for company, but no longer once
// as many writers wait as can (the intake's workers): with a 20 s linger,
// three writers of a group of three commit at once. Entries queued
// by later wait for nobody and do not count.
func TestGroupCommitLingerEndsWhenFull(t *testing.T) {
	tests := []struct {
		name    string
		linger  time.Duration
		full    int
		writers int
		// minWait is a lower bound only: a linger can end late on a busy
		// machine, never early.
		minWait time.Duration
		later   int // entries queued by later first: they wait for nobody
	}{
		{"full group commits at once", 20 * time.Second, 3, 3, 0, 0},
		{"short of full waits the linger", 30 * time.Millisecond, 3, 2, 30 * time.Millisecond, 0},
		{"no full size waits the linger", 30 * time.Millisecond, 0, 3, 30 * time.Millisecond, 0},
		{"later's entries do not fill it", 30 * time.Millisecond, 3, 1, 30 * time.Millisecond, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			s.SetCommitLinger(tt.linger, tt.full)
			g := &s.group
			g.mu.Lock()
			for range streamWrites {
				g.arrive(time.Now()) // a flood is under way
			}
			g.mu.Unlock()
			for range tt.later {
				g.later(func(*bolt.Tx) error { return nil })
			}
			start := time.Now()
			done := make(chan error, tt.writers)
			for i := range tt.writers {
				go func() {
					done <- g.update(func(tx *bolt.Tx) error {
						b, err := tx.CreateBucketIfNotExists([]byte("linger-test"))
						if err != nil {
							return err
						}
						return b.Put([]byte{byte(i)}, []byte("x"))
					})
				}()
			}
			for range tt.writers {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("writers still waiting after 5 s (linger %v, full %d)", tt.linger, tt.full)
				}
			}
			if took := time.Since(start); took < tt.minWait {
				t.Fatalf("commit after %v, before the linger of %v", took, tt.minWait)
			}
			err := s.db.View(func(tx *bolt.Tx) error {
				if n := tx.Bucket([]byte("linger-test")).Stats().KeyN; n != tt.writers {
					return fmt.Errorf("%d keys stored, want %d", n, tt.writers)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Ping, behind /healthz, reports a store that cannot commit (a full disk,
// an I/O error), not only one that cannot be read: before, it opened an
// empty read transaction, and /healthz said ok while every file failed to
// be stored for lack of space. An update's own error is not the store's.
func TestPingReportsFailedCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smsdrop.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(); err != nil {
		t.Fatalf("healthy store: %v", err)
	}
	if err := s.MarkMoved(12345); err == nil {
		t.Fatal("marking an unknown batch succeeded")
	}
	if err := s.Ping(); err != nil {
		t.Fatalf("after an update's own error: %v", err)
	}
	s.Close()

	// A store whose commits fail: opened read-only, every commit is refused.
	ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	broken := &Store{db: ro, path: path, group: groupCommit{db: ro}}
	defer ro.Close()
	if err := broken.MarkMoved(1); err == nil {
		t.Fatal("a read-only store committed")
	}
	if err := broken.Ping(); err == nil {
		t.Fatal("Ping says ok after a failed commit, and its probe cannot write either")
	}
	// The disk comes back: the probe's commit succeeds and clears it.
	ro.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.group.failed.Store(broken.group.failed.Load())
	if err := s.Ping(); err != nil {
		t.Fatalf("the store writes again, Ping: %v", err)
	}
	if s.group.failed.Load() != nil {
		t.Fatal("the successful probe did not clear the failure")
	}
}
