// Package intake turns a file in an account's inbox into a stored batch: it
// claims the file, hashes it, parses it, stores the batch and only then moves
// the file out of the inbox (to scheduled/, archive/ or rejected/). It is the
// only writer of new batches, and it owns the moves of batch files.
package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
	"smsdrop/state"
)

// Account is what intake needs to know of an account.
type Account struct {
	Login        string
	Dir          string // absolute account directory; the inbox
	Settings     batch.Settings
	DedupeWindow time.Duration
}

// DefaultWorkers is how many files are processed at once by default: while
// some wait for the store's commit, others read and parse, and their
// batches share the next commit.
const DefaultWorkers = 8

// Options configure an Intake.
type Options struct {
	Store    *state.Store
	Accounts []Account
	Clock    clock.Clock
	Logger   *slog.Logger
	// Validity is how long after its send time a batch may still be retried.
	Validity time.Duration
	// Workers process files concurrently (default DefaultWorkers). Files
	// over bigFile are processed one at a time, which bounds the memory
	// parsing takes.
	Workers int
	// OnStored is called after a batch is stored and its file moved.
	OnStored func(b *state.Batch, took time.Duration)
	// OnRecovered is called when a file stored before a crash was found
	// still in the inbox and moved without being processed again.
	OnRecovered func(b *state.Batch)
}

// Folders are the sub-folders of every account directory.
var Folders = []string{"scheduled", "archive", "rejected", "results", "replies"}

// Intake processes inbox files.
type Intake struct {
	o        Options
	accounts map[string]*Account
	mu       sync.Mutex
	// queue holds the files waiting for a worker, in order, under mu. It
	// is unbounded (a file is in it at most once, see jobs): Submit runs
	// before an upload's 226 and in the workers themselves, and must never
	// block. A bounded channel did: with 4,096 files queued during a
	// flood, a worker queueing a file again blocked on its own queue, all
	// of them did, and uploads waited for their 226 forever.
	queue []job
	// ready wakes a waiting worker; a worker that takes a job and leaves
	// more passes it on.
	ready chan struct{}
	// bigMu lets one file over bigFile be processed at a time.
	bigMu sync.Mutex
	// bufs holds the buffers files are read into; those grown past bigFile
	// are let go.
	bufs sync.Pool
	// jobs holds every file queued or being processed. A file submitted
	// again while a worker processes it is queued again when that worker is
	// done (it is then gone, or changed), never processed by two workers at
	// once.
	jobs map[job]jobState
	// names are the locks LockName hands out, striped by name.
	names [64]sync.Mutex
	// busy holds the inbox files a worker has opened and not finished
	// with, under busyMu. A worker adds its file under the file's name
	// lock, so the FTP server, which checks Busy under the same lock
	// before it renames or deletes an inbox file, either acts before the
	// worker opens the file or refuses.
	busyMu sync.Mutex
	busy   map[job]struct{}
	// testHookStored, when set, runs after a batch is stored and before
	// its file is moved.
	testHookStored func(name string)
	// testHookMoving, when set, runs in move once the folder is chosen.
	testHookMoving func(b *state.Batch)
}

type jobState int

const (
	queued jobState = iota + 1
	running
	runningAgain
)

type job struct{ login, name string }

// New returns an Intake. It creates every account's directory and folders.
func New(o Options) (*Intake, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	in := &Intake{o: o, accounts: map[string]*Account{}, ready: make(chan struct{}, 1), jobs: map[job]jobState{}, busy: map[job]struct{}{}}
	for i := range o.Accounts {
		a := &o.Accounts[i]
		for _, f := range append([]string{""}, Folders...) {
			if err := os.MkdirAll(filepath.Join(a.Dir, f), 0o750); err != nil {
				return nil, fmt.Errorf("create folder %q of account %s: %w", f, a.Login, err)
			}
		}
		in.accounts[strings.ToLower(a.Login)] = a
	}
	return in, nil
}

// Submit queues inbox file name of account login. Submitting a file twice
// before it is processed queues it once; submitting a file that is gone is
// harmless.
func (in *Intake) Submit(login, name string) {
	j := job{strings.ToLower(login), name}
	in.mu.Lock()
	switch in.jobs[j] {
	case queued, runningAgain:
		in.mu.Unlock()
		return
	case running:
		in.jobs[j] = runningAgain
		in.mu.Unlock()
		return
	}
	in.jobs[j] = queued
	in.queue = append(in.queue, j)
	in.mu.Unlock()
	in.wake()
}

// wake lets a waiting worker look at the queue.
func (in *Intake) wake() {
	select {
	case in.ready <- struct{}{}:
	default:
	}
}

// next takes the first queued file, marking it running, or reports that
// the queue is empty.
func (in *Intake) next() (job, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.queue) == 0 {
		return job{}, false
	}
	j := in.queue[0]
	in.queue[0] = job{}
	in.queue = in.queue[1:]
	if len(in.queue) == 0 {
		in.queue = nil // let the backing array go after a flood
	} else {
		in.wake()
	}
	in.jobs[j] = running
	return j, true
}

// queued is how many files wait for a worker.
func (in *Intake) queued() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.queue)
}

// done ends a job and queues it again when it was submitted meanwhile.
func (in *Intake) done(j job) {
	in.mu.Lock()
	again := in.jobs[j] == runningAgain
	delete(in.jobs, j)
	in.mu.Unlock()
	if again {
		in.Submit(j.login, j.name)
	}
}

// Run processes queued files until ctx is done.
func (in *Intake) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	idle := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.flushMoves(ctx, idle)
	}()
	for range in.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-in.ready:
				}
				for ctx.Err() == nil {
					j, ok := in.next()
					if !ok {
						break
					}
					if err := in.process(j.login, j.name); err != nil {
						in.o.Logger.Error("process file", "account", j.login, "file", j.name, "err", err)
					}
					in.done(j)
					if in.queued() == 0 {
						select {
						case idle <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// bigFile is the size over which files are processed one at a time: a
// 100,000-recipient file is about 3.5 MiB and its parse peaks at a few
// hundred MiB.
const bigFile = 1 << 20

// movesFlushDelay is how long the record of a file's move may wait for the
// next file's commit before it gets its own. During a flood the next commit
// comes first: each file then costs one commit instead of two, and commits
// (each waits for two fsyncs) are what bounds the files per second.
const movesFlushDelay = 100 * time.Millisecond

// flushMoves commits the moves still pending once the queue was empty for
// movesFlushDelay, and when ctx ends.
func (in *Intake) flushMoves(ctx context.Context, idle <-chan struct{}) {
	flush := func() {
		if err := in.o.Store.FlushMoved(); err != nil {
			in.o.Logger.Error("record moved files", "err", err)
		}
	}
	defer flush()
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle:
		}
		t := in.o.Clock.NewTimer(movesFlushDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		flush()
	}
}

// Process handles one inbox file now, and returns once its move out of the
// inbox is recorded too. A file that is gone is not an error.
func (in *Intake) Process(login, name string) error {
	if err := in.process(login, name); err != nil {
		return err
	}
	return in.o.Store.FlushMoved()
}

// process handles one inbox file; the record of its move may wait for the
// next commit (state.Store.MarkMovedLater).
func (in *Intake) process(login, name string) error {
	a := in.accounts[strings.ToLower(login)]
	if a == nil {
		return fmt.Errorf("unknown account %q", login)
	}
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("refusing inbox name %q", name)
	}
	if len(name) > batch.MaxNameBytes {
		// Only a local writer can drop such a name (FTP refuses it). Its
		// folder and result names would not fit the file system: the
		// batch would be stored, and its file never moved nor answered.
		in.o.Logger.Warn("inbox file name too long: not processed; rename it shorter",
			"account", a.Login, "file", name, "bytes", len(name), "max_bytes", batch.MaxNameBytes)
		return nil
	}
	start := in.o.Clock.Now()
	path := filepath.Join(a.Dir, name)
	key := job{strings.ToLower(a.Login), name}
	unlock := in.LockName(a.Login, name)
	in.setBusy(key, true)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	unlock()
	defer in.setBusy(key, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // already processed
		}
		if errors.Is(err, syscall.ELOOP) {
			in.o.Logger.Warn("symlink in inbox ignored", "account", a.Login, "file", name)
			return nil
		}
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	if fi.Size() > bigFile {
		in.bigMu.Lock()
		defer in.bigMu.Unlock()
	}
	limit := a.Settings.MaxFileSize
	if limit <= 0 {
		limit = batch.DefaultMaxFileSize
	}
	// The file is read once, into memory (it is at most limit bytes, and
	// one past that tells an oversized file), then hashed and parsed.
	buf, _ := in.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= bigFile {
			buf.Reset()
			in.bufs.Put(buf)
		}
	}()
	buf.Grow(int(min(fi.Size(), limit)) + 1)
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	sum := sha256.Sum256(buf.Bytes())

	if done, err := in.recover(a, name, sum[:], fi, buf.Bytes()); done || err != nil {
		return err
	}

	set := a.Settings
	set.Now = in.o.Clock.Now
	optout, err := in.o.Store.OptedOut(a.Login)
	if err != nil {
		return err
	}
	if len(optout) > 0 {
		set.OptedOut = func(n string) bool { return optout[n] }
	}
	parsed, err := batch.Parse(bytes.NewReader(buf.Bytes()), set)
	if err != nil {
		in.o.Logger.Warn("file unreadable", "account", a.Login, "file", name, "err", err)
		parsed = nil
	}
	b, err := in.o.Store.CreateBatch(state.NewBatch{
		Account: a.Login, Name: name, Sum: sum[:], Received: start,
		Parsed: parsed, DedupeWindow: a.DedupeWindow, Validity: in.o.Validity,
	})
	if err != nil {
		return err
	}
	f.Close()
	if in.testHookStored != nil {
		in.testHookStored(name)
	}
	// Stored, the batch is sent and answered even when its move fails (a
	// full disk): the file stays in the inbox, and the next scan moves it
	// (recover). Before, nothing woke the dispatcher or the results writer
	// for it.
	moveErr := in.move(a, name, b, fi, buf.Bytes())
	if in.o.OnStored != nil {
		in.o.OnStored(b, in.o.Clock.Now().Sub(start))
	}
	if moveErr != nil {
		return moveErr
	}
	in.o.Logger.Info("file processed", "account", a.Login, "file", name, "batch", b.ID, "state", b.State,
		"messages", b.Messages, "recipients", b.Recipients, "segments", b.Segments,
		// Milliseconds, named so: a time.Duration is nanoseconds, without
		// a unit, in the JSON format.
		"errors", len(b.Errors), "took_ms", float64(in.o.Clock.Now().Sub(start).Microseconds())/1000)
	return nil
}

// recover handles a file whose batch was stored before a crash that came
// before the file's move: it is moved, not processed again (SPEC §9).
func (in *Intake) recover(a *Account, name string, sum []byte, read os.FileInfo, data []byte) (bool, error) {
	b, err := in.o.Store.InboxBatch(a.Login, name)
	if err != nil || b == nil {
		return false, err
	}
	// The batch's file is in its folder: its move was done but not
	// recorded, and this is a new file under the same name (even with the
	// same bytes). Record the move, then process the new file.
	if in.inFolder(a, b) {
		return false, in.o.Store.MarkMoved(b.ID)
	}
	if b.Hash == fmt.Sprintf("%x", sum) {
		if err := in.move(a, name, b, read, data); err != nil {
			return true, err
		}
		in.o.Logger.Info("file stored before a restart moved, not processed again", "account", a.Login, "file", name, "batch", b.ID)
		if in.o.OnRecovered != nil {
			in.o.OnRecovered(b)
		}
		return true, nil
	}
	return false, nil
}

// move puts batch b's file, inbox file name as read (its file info and
// bytes), in b's folder. When name is another file by now (an upload under
// the same name replaced it while the batch was stored) or gone, the bytes
// read are written there instead, and the new file stays for its own turn.
// LockName keeps the FTP server from replacing name between the check and
// the rename.
func (in *Intake) move(a *Account, name string, b *state.Batch, read os.FileInfo, data []byte) error {
	unlock := in.LockName(a.Login, name)
	defer unlock()
	folder := b.Folder
	if folder == "scheduled" {
		// Its time may have come meanwhile: started, it goes to archive/.
		// Read under the lock Start holds, so that the file never lands
		// in scheduled/ after Start looked for it there.
		if cur, err := in.o.Store.Batch(b.ID); err == nil {
			folder = folderOf(cur)
		}
	}
	if in.testHookMoving != nil {
		in.testHookMoving(b)
	}
	dst := filepath.Join(a.Dir, folder, b.FileName())
	src := filepath.Join(a.Dir, name)
	cur, err := os.Lstat(src)
	if err == nil && os.SameFile(cur, read) {
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("move %s to %s/: %w", name, folder, err)
		}
		in.o.Store.MarkMovedLater(b.ID)
		return nil
	}
	if err := writeSynced(dst, data); err != nil {
		return fmt.Errorf("keep %s in %s/: %w", name, folder, err)
	}
	in.o.Logger.Warn("file replaced or deleted in the inbox while it was stored: its bytes kept in its folder, a new file under that name is processed on its own",
		"account", a.Login, "file", name, "batch", b.ID)
	in.o.Store.MarkMovedLater(b.ID)
	return nil
}

// writeSynced writes data to the new file p, durably, through a hidden
// name so that a crash never leaves part of it under p.
func writeSynced(p string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// LockName holds off the moves of account login's inbox file name until
// unlock is called. The FTP server holds it while it renames a file over
// name (ftpd Config.LockInboxNames), so that a move never takes a newer upload
// for the file the intake read.
func (in *Intake) LockName(login, name string) (unlock func()) {
	return in.LockNames(login, name)
}

// LockNames takes LockName for several names of one account at once, in
// one order whatever the names, so that two callers never deadlock.
func (in *Intake) LockNames(login string, names ...string) (unlock func()) {
	var idx []int
	for _, name := range names {
		h := fnv.New32a()
		h.Write([]byte(strings.ToLower(login)))
		h.Write([]byte{0})
		h.Write([]byte(name))
		i := int(h.Sum32() % uint32(len(in.names)))
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		in.names[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			in.names[i].Unlock()
		}
	}
}

// Busy reports whether a worker has inbox file name of account login open
// and has not moved it yet. The FTP server asks, under LockNames, before
// it renames or deletes an inbox file: renamed, the file would be
// processed again under its new name (sent twice with no dedupe window);
// deleted, it would be sent anyway, its bytes kept.
//
// A file whose batch is stored but whose move failed (a full disk) is busy
// too until a scan moves it: its batch is sent, so renamed it would be
// processed again, and deleted it would be sent all the same.
func (in *Intake) Busy(login, name string) bool {
	if in.Opened(login, name) {
		return true
	}
	a := in.accounts[strings.ToLower(login)]
	if a == nil {
		return false
	}
	b, err := in.o.Store.InboxBatch(a.Login, name)
	if err != nil || b == nil || b.Moved {
		return false
	}
	fi, err := os.Lstat(filepath.Join(a.Dir, name))
	return err == nil && writtenBefore(fi, b)
}

// Opened reports whether a worker has inbox file name of account login
// open and has not moved it yet: the part of Busy that needs no store.
func (in *Intake) Opened(login, name string) bool {
	in.busyMu.Lock()
	defer in.busyMu.Unlock()
	_, ok := in.busy[job{strings.ToLower(login), name}]
	return ok
}

// writtenBefore reports whether an inbox file is the one batch b was read
// from, as far as its modification time tells: written before b was
// received, where a newer upload under its name, even of the same bytes,
// is written after. A rename keeps it.
func writtenBefore(fi os.FileInfo, b *state.Batch) bool {
	return !fi.ModTime().After(b.Received)
}

func (in *Intake) setBusy(key job, on bool) {
	in.busyMu.Lock()
	defer in.busyMu.Unlock()
	if on {
		in.busy[key] = struct{}{}
	} else {
		delete(in.busy, key)
	}
}

// Path is where batch b's file is now on disk, once moved out of the inbox.
func (in *Intake) Path(b *state.Batch) string {
	a := in.accounts[strings.ToLower(b.Account)]
	if a == nil {
		return ""
	}
	return filepath.Join(a.Dir, folderOf(b), b.FileName())
}

// folderOf is the folder batch b's file belongs in now: b.Folder is where
// the intake put it, and Start moves a started scheduled batch's file to
// archive/ (cancelled while scheduled, it is gone anyway).
func folderOf(b *state.Batch) string {
	if b.Folder == "scheduled" && b.State != state.Scheduled {
		return "archive"
	}
	return b.Folder
}

// Start moves a scheduled batch's file from scheduled/ to archive/ when it
// starts sending. It fails when the user deleted the file: the batch is then
// cancelled.
func (in *Intake) Start(b *state.Batch) error {
	a := in.accounts[strings.ToLower(b.Account)]
	if a == nil {
		return fmt.Errorf("unknown account %q", b.Account)
	}
	// The intake's move of this file out of the inbox waits, so it is in
	// one place while Start looks (see move).
	unlock := in.LockName(a.Login, b.Name)
	defer unlock()
	src := filepath.Join(a.Dir, "scheduled", b.FileName())
	if err := os.Rename(src, filepath.Join(a.Dir, "archive", b.FileName())); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, err2 := os.Lstat(filepath.Join(a.Dir, "archive", b.FileName())); err2 == nil {
				return nil // moved before a restart
			}
			// Not moved out of the inbox yet (its D- came between the
			// store and the move, or a crash came in between): not a
			// deletion. The intake's move sends it to archive/.
			if sameBytes(filepath.Join(a.Dir, b.Name), b.Hash) {
				return nil
			}
		}
		return fmt.Errorf("start batch %d: %w", b.ID, err)
	}
	return nil
}

// Reconcile runs at start-up, before the dispatcher: it finishes moves a
// crash interrupted and returns the batches whose file the user deleted
// while smsdrop was down, which must be cancelled.
func (in *Intake) Reconcile() ([]uint64, error) {
	for _, a := range in.accounts {
		if err := in.lostMoves(a); err != nil {
			return nil, fmt.Errorf("reconcile: %w", err)
		}
	}
	bs, err := in.o.Store.BatchesWhere(func(b *state.Batch) bool {
		return b.State == state.Scheduled || b.State == state.Sending
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	for _, b := range bs {
		a := in.accounts[strings.ToLower(b.Account)]
		if a == nil {
			continue
		}
		if !b.Moved {
			if !in.inFolder(a, b) {
				continue // its file is still in the inbox: the first scan handles it
			}
			// Moved, but the record of it was lost with the stop.
			if err := in.o.Store.MarkMoved(b.ID); err != nil {
				return nil, fmt.Errorf("reconcile batch %d: %w", b.ID, err)
			}
		}
		// Started, its move to archive/ lost with the stop.
		if inSched, inArch := in.whereIs(a, b); b.State == state.Sending && inSched && !inArch {
			sched := filepath.Join(a.Dir, "scheduled", b.FileName())
			if err := os.Rename(sched, filepath.Join(a.Dir, "archive", b.FileName())); err != nil {
				return nil, fmt.Errorf("reconcile batch %d: %w", b.ID, err)
			}
		}
	}
	return in.FilesGone()
}

// whereIs reports whether batch b's file is in a's scheduled/ and in its
// archive/. It looks in scheduled/ first: a starting batch's file moves from
// there to archive/ in one rename, so it is never missed in both.
func (in *Intake) whereIs(a *Account, b *state.Batch) (inSched, inArch bool) {
	_, errS := os.Lstat(filepath.Join(a.Dir, "scheduled", b.FileName()))
	_, errA := os.Lstat(filepath.Join(a.Dir, "archive", b.FileName()))
	return errS == nil, errA == nil
}

// FilesGone returns the scheduled and sending batches whose file is in
// neither scheduled/ nor archive/: deleted by the user while nothing
// watched (before the watches were in place, or in an fsnotify overflow).
// Deleting the file cancels what is left of its batch (SPEC §5).
func (in *Intake) FilesGone() ([]uint64, error) {
	bs, err := in.o.Store.BatchesWhere(func(b *state.Batch) bool {
		return (b.State == state.Scheduled || b.State == state.Sending) && b.Moved
	})
	if err != nil {
		return nil, fmt.Errorf("look for deleted batch files: %w", err)
	}
	var gone []uint64
	for _, b := range bs {
		a := in.accounts[strings.ToLower(b.Account)]
		if a == nil {
			continue
		}
		if inSched, inArch := in.whereIs(a, b); !inSched && !inArch {
			gone = append(gone, b.ID)
		}
	}
	return gone, nil
}

// lostMoves puts back the files a power cut returned to a's inbox. Nothing
// syncs the folders, and the store's commit does not make the rename out
// of the inbox durable: a cut can keep the record of a move and lose the
// move. The file is then in the inbox again, under its name, and in none
// of the folders. Taken for a new upload it would be sent again (without a
// dedupe window) or reported as a duplicate, and its batch, its file
// missing, cancelled as if the user had deleted it. Only start-up can find
// such files: while smsdrop runs, a file in the inbox is a new upload. It
// tells them from new uploads of the same bytes by their modification
// time, which a rename keeps.
func (in *Intake) lostMoves(a *Account) error {
	ents, err := os.ReadDir(a.Dir)
	if err != nil {
		return fmt.Errorf("read inbox of %s: %w", a.Login, err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
			continue
		}
		id := in.o.Store.Latest(a.Login, name)
		if id == 0 {
			continue // never stored under this name: not hashed
		}
		b, err := in.o.Store.Batch(id)
		if err != nil || !b.Moved || b.State == state.Cancelled {
			continue // a cancelled batch's file is gone for good
		}
		// A lost move leaves the file as the intake read it: written
		// before its batch was received. A file written since is a new
		// upload, even with the same bytes (the user deleted the batch's
		// file, and the same export came again while smsdrop was down).
		fi, err := e.Info()
		if err != nil || !writtenBefore(fi, b) {
			continue
		}
		if in.inFolder(a, b) || !sameBytes(filepath.Join(a.Dir, name), b.Hash) {
			continue // a new upload
		}
		dst := folderOf(b)
		if err := os.Rename(filepath.Join(a.Dir, name), filepath.Join(a.Dir, dst, b.FileName())); err != nil {
			return fmt.Errorf("move %s back to %s/: %w", name, dst, err)
		}
		in.o.Logger.Warn("file found back in the inbox after a stop (its move was lost); moved again, not processed twice",
			"account", a.Login, "file", name, "batch", b.ID, "folder", dst)
	}
	return nil
}

// inFolder reports whether batch b's file is in any folder a batch file
// goes to.
func (in *Intake) inFolder(a *Account, b *state.Batch) bool {
	for _, f := range []string{"scheduled", "archive", "rejected"} {
		if _, err := os.Lstat(filepath.Join(a.Dir, f, b.FileName())); err == nil {
			return true
		}
	}
	return false
}

// sameBytes reports whether the file at p has the SHA-256 hash (hex) sum.
func sameBytes(p, sum string) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return fmt.Sprintf("%x", h.Sum(nil)) == sum
}

// FileRemoved is told that rel ("scheduled/12_sms.txt", "archive/12_sms.txt")
// disappeared from account login; it returns the batch to cancel, or 0.
func (in *Intake) FileRemoved(login, rel string) uint64 {
	dir, file, ok := strings.Cut(rel, "/")
	if !ok || (dir != "scheduled" && dir != "archive") {
		return 0
	}
	idStr, _, ok := strings.Cut(file, "_")
	if !ok {
		return 0
	}
	var id uint64
	if _, err := fmt.Sscan(idStr, &id); err != nil || id == 0 {
		return 0
	}
	b, err := in.o.Store.Batch(id)
	if err != nil || !strings.EqualFold(b.Account, login) || b.FileName() != file {
		return 0
	}
	// A move from scheduled/ to archive/ also removes the scheduled name.
	if _, err := os.Lstat(filepath.Join(in.accounts[strings.ToLower(login)].Dir, rel)); err == nil {
		return 0
	}
	if dir == "scheduled" {
		if _, err := os.Lstat(filepath.Join(in.accounts[strings.ToLower(login)].Dir, "archive", file)); err == nil {
			return 0
		}
	}
	switch {
	case dir == "scheduled" && b.State == state.Scheduled, dir == "archive" && b.State == state.Sending:
		return id
	}
	return 0
}

// Forget removes the file of a batch swept by retention from archive/ or
// rejected/. A file the user already deleted is not an error.
func (in *Intake) Forget(b *state.Batch) error {
	p := in.Path(b)
	if p == "" {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove file of batch %d: %w", b.ID, err)
	}
	return nil
}
