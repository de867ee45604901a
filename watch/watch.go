// Package watch finds files that reach an account's inbox without going
// through the FTP server (local export jobs writing into the directory) and
// notices when a user deletes a file from scheduled/ or archive/ on disk.
//
// fsnotify says when something happened; periodic scans catch what it did
// not say (events lost to an overflow, files that were already there). A file
// is only reported once its size and modification time have stopped
// changing for Settle, because a local writer gives no "transfer complete"
// signal the way an FTP upload does.
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"smsdrop/clock"
)

// Defaults of Options.Settle and Options.Rescan (SPEC §10 [processing]).
const (
	DefaultSettle = 2 * time.Second
	DefaultRescan = 30 * time.Second
)

// The account sub-folders whose deletions are reported (SPEC §5, §6).
const (
	DirScheduled = "scheduled"
	DirArchive   = "archive"
)

// Options configure a Watcher.
type Options struct {
	// Accounts maps each login to its absolute account directory. The
	// directory is the inbox; its scheduled/ and archive/ sub-folders must
	// exist before Run.
	Accounts map[string]string
	// Settle is how long a file's size and modification time must stay
	// unchanged before it is reported. Zero means DefaultSettle.
	Settle time.Duration
	// Rescan is the period of full inbox scans. Zero means DefaultRescan.
	Rescan time.Duration
	// Clock times Settle and Rescan; nil means the wall clock.
	Clock clock.Clock
	// Logger receives watch problems; nil discards them.
	Logger *slog.Logger
	// OnFile is called with (login, name) for a stable regular file in the
	// inbox. It may be called again for the same file (a later rescan while
	// the file is still there), so the consumer must be idempotent. It runs
	// on Run's goroutine: it should hand the file over and return quickly,
	// or events queue up in the kernel until they overflow.
	OnFile func(login, name string)
	// OnRemove is called with (login, rel) when a file disappears from
	// scheduled/ or archive/, rel being like "scheduled/12_sms.txt". A move
	// from scheduled/ to archive/ is a disappearance from scheduled/ too:
	// the consumer decides whether it was a cancellation. It runs on Run's
	// goroutine, like OnFile.
	OnRemove func(login, rel string)
	// OnMissed, when set, is called on Run's goroutine once the watches
	// are in place and after each fsnotify overflow: deletions before the
	// watches or in an overflow were never reported to OnRemove, and a
	// rescan only lists the inboxes. The consumer looks for them itself.
	OnMissed func()
}

// Watcher watches the account directories given to New.
type Watcher struct {
	settle   time.Duration
	rescan   time.Duration
	clk      clock.Clock
	log      *slog.Logger
	onFile   func(login, name string)
	onRemove func(login, rel string)
	onMissed func()

	// inboxes maps a cleaned inbox path to its login; subdirs maps a
	// cleaned scheduled/ or archive/ path to the login and the folder name.
	// Events name files by path, so these let one lookup route an event.
	inboxes map[string]string
	subdirs map[string]subdir
	dirs    map[string]string // login → cleaned inbox path
	logins  []string          // sorted, so scans visit accounts in a stable order
	watched []string          // every directory to give fsnotify, sorted

	running atomic.Bool
	scans   atomic.Int64 // completed scans, for tests to synchronise on

	// mu guards the settle state below. Only Run's goroutine changes it;
	// the lock lets tests inspect it while Run is going.
	mu      sync.Mutex
	pending map[fileKey]*candidate
	// reported remembers what a file looked like when it was reported, so
	// that events fsnotify delivers late, about writes made before the
	// report, do not offer the same unchanged file again. Scans clear it:
	// a file still there at a rescan is offered again on purpose.
	reported map[fileKey]stamp
	timer    clock.Timer // nil until the first candidate
	armed    bool        // timer will fire at or before the earliest due candidate
}

type subdir struct {
	login string
	name  string // DirScheduled or DirArchive
}

type fileKey struct {
	login string
	name  string
}

// stamp is what tells one version of a file from another.
type stamp struct {
	size  int64
	mtime time.Time
}

func stampOf(fi fs.FileInfo) stamp { return stamp{fi.Size(), fi.ModTime()} }

func (s stamp) same(o stamp) bool { return s.size == o.size && s.mtime.Equal(o.mtime) }

// candidate is a file seen in an inbox and not yet reported.
type candidate struct {
	stamp
	since time.Time // clock time at which the stamp was last seen to change
}

// New checks opts and returns a Watcher; nothing is watched before Run.
func New(opts Options) (*Watcher, error) {
	if opts.OnFile == nil {
		return nil, errors.New("watch: OnFile is required")
	}
	if opts.OnRemove == nil {
		return nil, errors.New("watch: OnRemove is required")
	}
	if opts.Settle < 0 {
		return nil, fmt.Errorf("watch: negative settle %v", opts.Settle)
	}
	if opts.Rescan < 0 {
		return nil, fmt.Errorf("watch: negative rescan %v", opts.Rescan)
	}
	w := &Watcher{
		settle:   cmp.Or(opts.Settle, DefaultSettle),
		rescan:   cmp.Or(opts.Rescan, DefaultRescan),
		clk:      opts.Clock,
		log:      opts.Logger,
		onFile:   opts.OnFile,
		onRemove: opts.OnRemove,
		onMissed: opts.OnMissed,
		inboxes:  make(map[string]string, len(opts.Accounts)),
		subdirs:  make(map[string]subdir, 2*len(opts.Accounts)),
		dirs:     make(map[string]string, len(opts.Accounts)),
		pending:  make(map[fileKey]*candidate),
		reported: make(map[fileKey]stamp),
	}
	if w.clk == nil {
		w.clk = clock.Real{}
	}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// A directory watched twice would route its events to one account
	// only, so overlapping accounts are a configuration error.
	seen := make(map[string]string)
	claim := func(login, dir string) error {
		if other, ok := seen[dir]; ok {
			return fmt.Errorf("watch: accounts %q and %q share directory %s", other, login, dir)
		}
		seen[dir] = login
		return nil
	}
	for login, dir := range opts.Accounts {
		if login == "" {
			return nil, fmt.Errorf("watch: empty login for directory %s", dir)
		}
		if !filepath.IsAbs(dir) {
			return nil, fmt.Errorf("watch: account %q: directory %q is not absolute", login, dir)
		}
		dir = filepath.Clean(dir)
		if err := claim(login, dir); err != nil {
			return nil, err
		}
		w.inboxes[dir] = login
		w.dirs[login] = dir
		w.watched = append(w.watched, dir)
		for _, name := range []string{DirScheduled, DirArchive} {
			sub := filepath.Join(dir, name)
			if err := claim(login, sub); err != nil {
				return nil, err
			}
			w.subdirs[sub] = subdir{login: login, name: name}
			w.watched = append(w.watched, sub)
		}
		w.logins = append(w.logins, login)
	}
	slices.Sort(w.logins)
	slices.Sort(w.watched)
	return w, nil
}

// Ignored reports whether an inbox file name is a temporary name that is
// skipped until renamed: a leading "." or a ".tmp", ".part", ".filepart" or
// "~" suffix in any case (SPEC §5).
func Ignored(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	lower := strings.ToLower(name)
	for _, suffix := range []string{".tmp", ".part", ".filepart"} {
		if strings.HasSuffix(lower, suffix) {
			return true
		}
	}
	return false
}

// Run watches until ctx is done, then returns nil. It scans every inbox at
// start, follows fsnotify events, and scans again every Rescan and right
// after fsnotify reports an overflow. A Watcher runs once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("watch: Run called twice")
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: start fsnotify: %w", err)
	}
	defer fw.Close()
	// Watches are added before the first scan so that a file arriving in
	// between is seen by one or the other.
	for _, dir := range w.watched {
		if err := fw.Add(dir); err != nil {
			return fmt.Errorf("watch: watch %s: %w", dir, err)
		}
	}
	return w.loop(ctx, fw.Events, fw.Errors)
}

// loop is Run without fsnotify, so tests can feed it events and errors, or
// withhold them to play a missed event.
func (w *Watcher) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error) error {
	rescanT := w.clk.NewTimer(w.rescan)
	defer rescanT.Stop()
	w.scan(rescanT)
	w.missed()
	defer func() {
		w.mu.Lock()
		if w.timer != nil {
			w.timer.Stop()
		}
		w.mu.Unlock()
	}()
	for {
		var settleC <-chan time.Time
		w.mu.Lock()
		if w.timer != nil {
			settleC = w.timer.C()
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("watch: fsnotify event channel closed")
			}
			w.event(ev)
		case err, ok := <-errs:
			if !ok {
				return errors.New("watch: fsnotify error channel closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("watch: fsnotify overflow, rescanning", "err", err)
				w.scan(rescanT)
				w.missed()
				continue
			}
			w.log.Error("watch: fsnotify", "err", err)
		case <-rescanT.C():
			w.scan(rescanT)
		case <-settleC:
			w.settled()
		}
	}
}

func (w *Watcher) missed() {
	if w.onMissed != nil {
		w.onMissed()
	}
}

// event routes one fsnotify event to the inbox or deletion logic.
func (w *Watcher) event(ev fsnotify.Event) {
	dir, name := filepath.Split(ev.Name)
	dir = filepath.Clean(dir)
	if login, ok := w.inboxes[dir]; ok {
		if Ignored(name) {
			return
		}
		switch {
		case ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write):
			w.consider(login, name)
		case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
			w.forget(fileKey{login, name})
		}
		return
	}
	if sd, ok := w.subdirs[dir]; ok {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.onRemove(sd.login, sd.name+"/"+name)
		}
		return
	}
	// Events about a watched directory itself (its removal, say) land
	// here; the next scan logs whatever is wrong with it.
	w.log.Debug("watch: event outside watched folders", "event", ev.String())
}

// consider records or refreshes an inbox file as a candidate. Only a change
// of size or mtime restarts its settle time, so repeated events about an
// unchanged file do not postpone it.
func (w *Watcher) consider(login, name string) {
	key := fileKey{login, name}
	fi, err := os.Lstat(filepath.Join(w.inboxDir(login), name))
	if err != nil || !fi.Mode().IsRegular() {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("watch: stat inbox file", "account", login, "file", name, "err", err)
		}
		w.forget(key)
		return
	}
	st := stampOf(fi)
	now := w.clk.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.reported[key]; ok {
		if r.same(st) {
			return
		}
		delete(w.reported, key)
	}
	c, ok := w.pending[key]
	if ok && c.same(st) {
		return
	}
	if !ok {
		c = &candidate{}
		w.pending[key] = c
	}
	c.stamp, c.since = st, now
	// Every candidate is due Settle after its since, and since only moves
	// forward with the clock, so a new due time is never earlier than one
	// the armed timer already covers: the timer needs arming only when idle.
	if !w.armed {
		w.arm(w.settle)
	}
}

func (w *Watcher) forget(key fileKey) {
	w.mu.Lock()
	delete(w.pending, key)
	delete(w.reported, key)
	w.mu.Unlock()
}

// arm makes the settle timer fire after d; w.mu must be held.
func (w *Watcher) arm(d time.Duration) {
	if w.timer == nil {
		w.timer = w.clk.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	w.armed = true
}

// settled reports every candidate that has been unchanged for Settle and
// re-arms the timer for the earliest remaining one.
func (w *Watcher) settled() {
	now := w.clk.Now()
	var stable []fileKey
	w.mu.Lock()
	w.armed = false
	var next time.Time
	for key, c := range w.pending {
		due := c.since.Add(w.settle)
		if due.After(now) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		// Events may lag behind the file, so the file itself decides.
		fi, err := os.Lstat(filepath.Join(w.inboxDir(key.login), key.name))
		switch {
		case err != nil || !fi.Mode().IsRegular():
			delete(w.pending, key)
		case stampOf(fi).same(c.stamp):
			delete(w.pending, key)
			w.reported[key] = c.stamp
			stable = append(stable, key)
		default:
			c.stamp, c.since = stampOf(fi), now
			if due = now.Add(w.settle); next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	if !next.IsZero() {
		w.arm(next.Sub(now))
	}
	w.mu.Unlock()
	slices.SortFunc(stable, func(a, b fileKey) int {
		return cmp.Or(cmp.Compare(a.login, b.login), cmp.Compare(a.name, b.name))
	})
	for _, key := range stable {
		w.onFile(key.login, key.name)
	}
}

// scan lists every inbox, makes each regular file a candidate and drops
// candidates that are gone, then restarts the rescan period.
func (w *Watcher) scan(rescanT clock.Timer) {
	w.mu.Lock()
	clear(w.reported)
	w.mu.Unlock()
	for _, login := range w.logins {
		dir := w.inboxDir(login)
		entries, err := os.ReadDir(dir)
		if err != nil {
			w.log.Error("watch: scan inbox", "account", login, "err", err)
			continue
		}
		present := make(map[string]bool, len(entries))
		for _, e := range entries {
			// The directory entry's type is enough to skip folders and
			// symlinks without a stat each.
			if !e.Type().IsRegular() || Ignored(e.Name()) {
				continue
			}
			present[e.Name()] = true
			w.consider(login, e.Name())
		}
		w.mu.Lock()
		for key := range w.pending {
			if key.login == login && !present[key.name] {
				delete(w.pending, key)
			}
		}
		w.mu.Unlock()
	}
	rescanT.Reset(w.rescan)
	w.scans.Add(1)
}

func (w *Watcher) inboxDir(login string) string { return w.dirs[login] }
