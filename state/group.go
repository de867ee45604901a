package state

import (
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the updates that callers submit concurrently in one
// bbolt transaction. Every write transaction waits for its fsyncs and
// bbolt runs them one at a time, so during a flood of small files the
// intake workers would otherwise queue behind each other's commits; sharing
// one commit costs each the same durability. Unlike bolt.DB.Batch it never
// waits for company: a caller that finds no commit running commits at
// once, and whoever arrives meanwhile joins the next one.
type groupCommit struct {
	db    *bolt.DB
	mu    sync.Mutex
	queue []*groupReq
	busy  bool
	// linger, when set, makes a commit wait that long for company first
	// while writes stream in (see SetCommitLinger), unless full writes
	// already wait: then nobody else is coming (full is how many writers
	// can wait at once) and it commits at once; full signals it.
	linger time.Duration
	full   int
	fullCh chan struct{}
	// waiting counts the writers waiting in queue (later's entries do
	// not wait, and do not count towards full).
	waiting int
	// arrivals are the times of the last len(arrivals) writes, a ring.
	arrivals [streamWrites]time.Time
	next     int
	// failed holds the error of the last commit when it failed (a full
	// disk, an I/O error), nil once one succeeds: what Ping reports.
	failed atomic.Pointer[error]
}

// A stream is streamWrites writes within streamWindow (400 a second): a
// flood of files, not one upload's few writes.
const (
	streamWrites = 4
	streamWindow = 10 * time.Millisecond
)

type groupReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// update runs fn in a write transaction, possibly shared with others, and
// returns once it is committed. fn may run more than once (when a shared
// transaction fails, each update is retried alone so that one failure
// fails no other): it must only set what its caller reads afterwards.
func (g *groupCommit) update(fn func(*bolt.Tx) error) error {
	req := &groupReq{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.arrive(time.Now())
	g.queue = append(g.queue, req)
	g.waiting++
	if g.busy {
		if g.full > 0 && g.waiting >= g.full {
			select {
			case g.fullCh <- struct{}{}:
			default:
			}
		}
		g.mu.Unlock()
		return <-req.done
	}
	g.busy = true
	for len(g.queue) > 0 {
		if g.linger > 0 && g.streaming(time.Now()) && (g.full == 0 || g.waiting < g.full) {
			select {
			case <-g.fullCh: // left by a group that committed meanwhile
			default:
			}
			g.mu.Unlock()
			g.wait()
			g.mu.Lock()
		}
		reqs := g.queue
		g.queue, g.waiting = nil, 0
		g.mu.Unlock()
		g.run(reqs)
		g.mu.Lock()
	}
	g.busy = false
	g.mu.Unlock()
	return <-req.done
}

// wait waits the linger, or less when the group fills up.
func (g *groupCommit) wait() {
	t := time.NewTimer(g.linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.fullCh:
	}
}

// arrive records a write's arrival. Called with mu held.
func (g *groupCommit) arrive(at time.Time) {
	g.arrivals[g.next] = at
	g.next = (g.next + 1) % streamWrites
}

// later queues fn for the next transaction, whoever starts it, without
// waiting for it; errors are dropped, so fn must tolerate its own.
func (g *groupCommit) later(fn func(*bolt.Tx) error) {
	g.mu.Lock()
	g.queue = append(g.queue, &groupReq{fn: fn, done: make(chan error, 1)})
	g.mu.Unlock()
}

// streaming reports whether the last streamWrites writes all came within
// streamWindow before now. Called with mu held.
func (g *groupCommit) streaming(now time.Time) bool {
	oldest := g.arrivals[g.next] // the ring's next slot holds the oldest
	return !oldest.IsZero() && now.Sub(oldest) < streamWindow
}

// flush commits what later queued, if anything is queued; when a commit is
// running, its leader takes the queue with the next one.
func (g *groupCommit) flush() error {
	g.mu.Lock()
	idle := len(g.queue) == 0
	g.mu.Unlock()
	if idle {
		return nil
	}
	return g.update(func(*bolt.Tx) error { return nil })
}

func (g *groupCommit) run(reqs []*groupReq) {
	if len(reqs) > 1 {
		var fnErr error
		err := g.db.Update(func(tx *bolt.Tx) error {
			for _, r := range reqs {
				if fnErr = r.fn(tx); fnErr != nil {
					return fnErr
				}
			}
			return nil
		})
		g.record(err, fnErr)
		if err == nil {
			for _, r := range reqs {
				r.done <- nil
			}
			return
		}
	}
	for _, r := range reqs {
		var fnErr error
		err := g.db.Update(func(tx *bolt.Tx) error {
			fnErr = r.fn(tx)
			return fnErr
		})
		g.record(err, fnErr)
		r.done <- err
	}
}

// record keeps a transaction's outcome for Ping: a failure to commit (a
// full disk, an I/O error) until a commit succeeds. An update's own error
// (a batch not found) says nothing of the store.
func (g *groupCommit) record(err, fnErr error) {
	switch {
	case err == nil:
		g.failed.Store(nil)
	case err != fnErr:
		g.failed.Store(&err)
	}
}
