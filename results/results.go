// Package results writes what users download: results/NAME.report and
// results/NAME.csv for each batch, and replies/YYYY-MM-DD.csv. Every file is
// rendered from the store in one read transaction and written atomically
// (hidden temporary file, then rename), at most once a second per batch and
// once more when the batch reaches a final state.
package results

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
	"smsdrop/state"
)

// Account is what the writer needs to know of an account.
type Account struct {
	Login    string
	Dir      string         // absolute account directory
	Location *time.Location // for scheduled: and reply days
}

// durableEvery is how often final result files are flushed to disk (one
// syncfs for all) and recorded as such. Until then a crash only means they
// are rendered again at start-up; flushing less often keeps a flood's
// result files from competing, every second, with the fsyncs of uploads.
const durableEvery = 5 * time.Second

// Options configure a Writer.
type Options struct {
	Store    *state.Store
	Accounts []Account
	Clock    clock.Clock
	Logger   *slog.Logger
	// MinInterval between two writes of one batch (default 1s).
	MinInterval time.Duration
	// RowsPerInterval makes a big batch wait one more MinInterval between
	// two writes per that many recipients (default 10,000): the CSV is
	// rendered whole each time, and a 100,000-recipient batch sending at
	// 20 parts/s would otherwise be rewritten every second for 80 minutes.
	RowsPerInterval int
}

// Writer renders result files.
type Writer struct {
	o        Options
	accounts map[string]Account
	notify   chan struct{}

	mu      sync.Mutex
	pending map[uint64]bool
	// final are pending batches known to be in a final state: written at
	// once, even inside their interval.
	final   map[uint64]bool
	replies map[string]bool
	// repliesNext is when an account's reply files may be written again.
	repliesNext map[string]time.Time
	// next is when a batch not in a final state may be written again.
	next map[uint64]time.Time
	// durable are batches whose final files are written but not yet
	// flushed to disk: one file-system sync every durableEvery covers them
	// all, instead of two fsyncs and a store transaction per batch.
	durable  []state.Rendered
	lastSync time.Time
	// writeMu orders every write of result files; files is used under it.
	writeMu sync.Mutex
	files   *atomicFiles
	// aside marks the names SetAside made way for, by "account/NAME"
	// (account in lower case): until the new upload's batch is written,
	// older batches of that name write to NAME.<id>.*. Under writeMu.
	aside map[string]asideMark
}

// asideMark tells the batches older than a new upload of a name: those up
// to upTo, stored before it, and any whose processing began before at
// (the previous file's, still being processed when the upload came).
type asideMark struct {
	upTo uint64
	at   time.Time
}

func (m asideMark) older(b *state.Batch) bool {
	return b.ID <= m.upTo || b.Received.Before(m.at)
}

// New returns a Writer.
func New(o Options) *Writer {
	if o.MinInterval <= 0 {
		o.MinInterval = time.Second
	}
	if o.RowsPerInterval <= 0 {
		o.RowsPerInterval = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{o: o, accounts: map[string]Account{}, notify: make(chan struct{}, 1),
		pending: map[uint64]bool{}, final: map[uint64]bool{}, replies: map[string]bool{}, repliesNext: map[string]time.Time{}, next: map[uint64]time.Time{},
		files: newAtomicFiles(), aside: map[string]asideMark{}}
	for _, a := range o.Accounts {
		if a.Location == nil {
			a.Location = time.UTC
		}
		w.accounts[strings.ToLower(a.Login)] = a
	}
	return w
}

// Changed tells the writer that batches changed.
func (w *Writer) Changed(ids ...uint64) { w.mark(ids, false) }

// Final tells the writer that batches reached a final state: their last
// write is what clients wait for, so it is not held back by the interval.
func (w *Writer) Final(ids ...uint64) { w.mark(ids, true) }

func (w *Writer) mark(ids []uint64, final bool) {
	w.mu.Lock()
	for _, id := range ids {
		w.pending[id] = true
		if final {
			w.final[id] = true
		}
	}
	w.mu.Unlock()
	w.poke()
}

// RepliesChanged tells the writer that accounts got replies.
func (w *Writer) RepliesChanged(accounts ...string) {
	w.mu.Lock()
	for _, a := range accounts {
		w.replies[strings.ToLower(a)] = true
	}
	w.mu.Unlock()
	w.poke()
}

func (w *Writer) poke() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Run writes pending files until ctx is done, then writes everything still
// pending and returns.
func (w *Writer) Run(ctx context.Context) error {
	var timer clock.Timer
	for {
		next := w.writePending(false)
		var timerC <-chan time.Time
		if next > 0 {
			if timer == nil {
				timer = w.o.Clock.NewTimer(next)
			} else {
				timer.Reset(next)
			}
			timerC = timer.C()
		}
		select {
		case <-ctx.Done():
			w.writePending(true)
			return nil
		case <-w.notify:
		case <-timerC:
		}
	}
}

// writePending writes the batches whose interval has passed (all when force)
// and returns how long until the next one is due, or 0.
func (w *Writer) writePending(force bool) time.Duration {
	now := w.o.Clock.Now()
	var due []uint64
	var next time.Duration
	w.mu.Lock()
	for id := range w.pending {
		// Inside the interval only a final state is written at once.
		if at, ok := w.next[id]; ok && !force && !w.final[id] {
			if wait := at.Sub(now); wait > 0 {
				next = sooner(next, wait)
				continue
			}
		}
		due = append(due, id)
		delete(w.pending, id)
		delete(w.final, id)
	}
	// A reply file is rewritten whole, so it is paced like a batch: at
	// most once a MinInterval per account...
	accts := map[string]bool{}
	for a := range w.replies {
		if wait := w.repliesNext[a].Sub(now); wait > 0 && !force {
			next = sooner(next, wait)
			continue
		}
		accts[a] = true
		delete(w.replies, a)
	}
	paced := len(w.replies) > 0
	w.mu.Unlock()
	if paced {
		// ...except before a report of the account: a client that sees a
		// report counting replies ("rep:") then finds them in replies/.
		for _, id := range due {
			b, err := w.o.Store.Batch(id)
			if err != nil {
				continue // reported by the write below
			}
			a := strings.ToLower(b.Account)
			w.mu.Lock()
			if w.replies[a] {
				accts[a] = true
				delete(w.replies, a)
			}
			w.mu.Unlock()
		}
	}
	for a := range accts {
		err := w.WriteReplies(a, now)
		w.mu.Lock()
		w.repliesNext[a] = now.Add(w.o.MinInterval)
		if err != nil {
			// Tried again: nothing else may change the file for hours.
			w.replies[a] = true
			next = sooner(next, w.o.MinInterval)
		}
		w.mu.Unlock()
		if err != nil {
			w.o.Logger.Error("write replies: trying again", "account", a, "err", err, "in", w.o.MinInterval.String())
		}
	}
	for _, id := range due {
		final, rows, err := w.writeBatch(id)
		if err != nil {
			if errors.Is(err, state.ErrNotFound) {
				continue // swept by retention meanwhile
			}
			// A full disk, too many open files: tried again, since a
			// final batch changes no more and nothing would ask again
			// before a restart.
			w.o.Logger.Error("write results: trying again", "batch", id, "err", err, "in", writeRetry.String())
			w.mu.Lock()
			w.pending[id] = true
			w.next[id] = now.Add(writeRetry)
			w.mu.Unlock()
			next = sooner(next, writeRetry)
			continue
		}
		w.mu.Lock()
		if final {
			delete(w.next, id)
		} else {
			w.next[id] = now.Add(w.o.MinInterval * time.Duration(1+rows/w.o.RowsPerInterval))
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	waiting := len(w.durable) > 0
	w.mu.Unlock()
	if waiting {
		if wait := w.lastSync.Add(durableEvery).Sub(now); wait > 0 && !force {
			next = sooner(next, wait)
		} else if err := w.makeDurable(now); err != nil {
			w.o.Logger.Error("flush final results", "err", err)
		}
	}
	return next
}

// writeRetry is how long a batch whose result files could not be written
// waits before it is tried again.
const writeRetry = 5 * time.Second

// sooner returns the shorter of two waits, 0 meaning none.
func sooner(next, wait time.Duration) time.Duration {
	if next == 0 || wait < next {
		return wait
	}
	return next
}

// WriteBatch renders batch id's report (and CSV unless rejected) now. It
// reports whether the batch is in a final state.
func (w *Writer) WriteBatch(id uint64) (bool, error) {
	final, _, err := w.writeBatch(id)
	return final, err
}

// writeBatch is WriteBatch, and also says how many recipients the batch has.
func (w *Writer) writeBatch(id uint64) (final bool, rows int, err error) {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	// Not written since the start, unless it was in a final state then:
	// its files most likely do not exist yet.
	w.mu.Lock()
	_, written := w.next[id]
	w.mu.Unlock()
	fresh := !written
	var rev uint64
	err = w.o.Store.BatchWithMessages(id, func(b *state.Batch, latest uint64, next func() (*state.Message, error)) error {
		a, ok := w.accounts[strings.ToLower(b.Account)]
		if !ok {
			return fmt.Errorf("unknown account %q", b.Account)
		}
		final, rows, rev = b.State.Final(), b.Recipients, b.ResultsRev
		dir := filepath.Join(a.Dir, "results")
		base := b.Name
		key := asideKey(b.Account, b.Name)
		mark, marked := w.aside[key]
		older := marked && mark.older(b)
		if marked && !older {
			delete(w.aside, key) // the new upload's own results now
		}
		switch {
		case latest != b.ID && latest != 0, older:
			base = fmt.Sprintf("%s.%d", b.Name, b.ID)
		case b.SameNameBefore != 0:
			// Only then can NAME.report be another batch's.
			if _, err := supersede(dir, b.Name, b.ID); err != nil {
				return err
			}
		}
		// The CSV goes first: once a client sees the report's new state,
		// the CSV it downloads is at least as new.
		if b.State != state.Rejected && b.State != state.Duplicate {
			err := w.files.write(dir, base+".csv", false, fresh, func(bw *bufio.Writer) error {
				cw := csv.NewWriter(bw)
				cw.UseCRLF = true
				if err := cw.Write(batch.CSVHeader); err != nil {
					return err
				}
				for {
					m, err := next()
					if err != nil {
						return err
					}
					if m == nil {
						break
					}
					if err := cw.Write(row(m).Record()); err != nil {
						return err
					}
				}
				cw.Flush()
				return cw.Error()
			})
			if err != nil {
				return err
			}
		}
		rep := report(b, a.Location)
		err := w.files.write(dir, base+".report", false, fresh, func(bw *bufio.Writer) error {
			_, err := rep.WriteTo(bw)
			return err
		})
		if err == nil && (b.State == state.Rejected || b.State == state.Duplicate) {
			// A NAME.csv there is an older batch's, kept aside by supersede.
			if rerr := os.Remove(filepath.Join(dir, base+".csv")); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = rerr
			}
		}
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("write results of batch %d: %w", id, err)
	}
	if final {
		w.mu.Lock()
		w.durable = append(w.durable, state.Rendered{ID: id, Rev: rev})
		w.mu.Unlock()
	}
	return final, rows, nil
}

// makeDurable flushes the final result files written since the last call
// to disk, then records them so start-up does not render them again. A
// crash before that renders them again: nothing is lost.
func (w *Writer) makeDurable(now time.Time) error {
	w.mu.Lock()
	rs := w.durable
	w.durable = nil
	w.mu.Unlock()
	w.lastSync = now
	if len(rs) == 0 {
		return nil
	}
	dirs := make([]string, 0, len(w.accounts))
	for _, a := range w.accounts {
		dirs = append(dirs, filepath.Join(a.Dir, "results"))
	}
	if err := syncFileSystems(dirs); err != nil {
		w.mu.Lock()
		w.durable = append(w.durable, rs...)
		w.mu.Unlock()
		return err
	}
	return w.o.Store.MarkResultsFinal(rs...)
}

func asideKey(account, name string) string { return strings.ToLower(account) + "/" + name }

// SetAside makes way for a new file uploaded to account's inbox under
// NAME, before the upload is acknowledged: results/NAME.report and NAME.csv
// go to NAME.<id>.report and .csv (SPEC §5: they are "first renamed"), and
// older batches of that name keep writing there, including one stored but
// not written yet, and the previous file's when busy says it is still
// being processed. NAME.report is then missing until the new file's report
// is written. Before, a client that polled NAME.report right after its
// upload read the previous file's report and took it for its own. The FTP
// server calls it under the name's lock, before the upload takes the name,
// so that the new file cannot be processed before. busy is asked only for
// a name no batch has had yet.
func (w *Writer) SetAside(account, name string, busy func() bool) {
	latest := w.o.Store.Latest(account, name)
	if latest == 0 && !busy() {
		return // a name never used: nothing to move (the common case)
	}
	a, ok := w.accounts[strings.ToLower(account)]
	if !ok {
		return
	}
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	dir := filepath.Join(a.Dir, "results")
	old, err := supersede(dir, name, 0)
	if err == nil && old != 0 {
		// The report first: a client that finds no report does not
		// look for the CSV.
		for _, ext := range []string{".report", ".csv"} {
			if rerr := os.Remove(filepath.Join(dir, name+ext)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = rerr
				break
			}
		}
	}
	w.aside[asideKey(account, name)] = asideMark{upTo: max(old, latest), at: w.o.Clock.Now()}
	if err != nil {
		w.o.Logger.Error("move the previous results of a reused name aside", "account", account, "file", name, "err", err)
	}
}

// supersede keeps the results of an older batch that used the same file
// name as NAME.<old id>.report / .csv, before batch id writes NAME.report.
// It hard-links them aside rather than renaming, and the new files then
// replace NAME.* by rename: a client polling NAME.report never finds it
// missing.
func supersede(dir, name string, id uint64) (old uint64, err error) {
	old, err = reportBatch(filepath.Join(dir, name+".report"))
	if err != nil || old == 0 || old == id {
		return 0, err
	}
	for _, ext := range []string{".report", ".csv"} {
		src := filepath.Join(dir, name+ext)
		dst := filepath.Join(dir, fmt.Sprintf("%s.%d%s", name, old, ext))
		if err := os.Link(src, dst); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("keep results of batch %d: %w", old, err)
		}
	}
	return old, nil
}

// reportBatch reads the "batch: N" line a report starts with; 0 when the file
// does not exist or is not one of ours.
func reportBatch(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "batch: ")
	if !ok {
		return 0, nil
	}
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, nil
	}
	return id, nil
}

func report(b *state.Batch, loc *time.Location) *batch.Report {
	r := &batch.Report{
		Batch:       b.ID,
		File:        b.Name,
		Account:     b.Account,
		Received:    b.Received.UTC(),
		State:       string(b.State),
		Messages:    b.Messages,
		Recipients:  b.Recipients,
		Segments:    b.Segments,
		DuplicateOf: b.DuplicateOf,
		Errors:      b.Errors,
		Warnings:    b.Warnings,
	}
	if b.Scheduled {
		r.Scheduled = b.SendAt.In(loc)
	}
	counts := b.Counts
	r.Counts = &counts
	r.Optout = b.Optout
	return r
}

// validationCodes are the codes given before anything is sent: such a
// recipient never gets a message id.
var validationCodes = map[string]bool{
	batch.CodeInvalidNumber: true, batch.CodeCountryNotAllowed: true, batch.CodeOptedOut: true,
	batch.CodeDuplicate: true, batch.CodeTooLong: true,
}

func row(m *state.Message) batch.CSVRow {
	r := batch.CSVRow{Line: m.Line, Message: m.Index, Input: m.Input, Recipient: m.Number,
		Status: m.Status, Code: m.Code, Segments: m.Segments, Encoding: m.Encoding,
		Updated: m.Updated.UTC(), Reply: m.Reply}
	if !(m.Status == batch.StatusKO && validationCodes[m.Code]) {
		r.MessageID = m.ID()
	}
	if m.Status == batch.StatusWait {
		r.Code = "" // a retry's last error is not a final code
	}
	return r
}

// WriteReplies rewrites the reply files of account for the days around now
// (the file of a day is appended to as replies come: rendering it whole from
// the store gives the same rows and is crash-safe).
func (w *Writer) WriteReplies(account string, now time.Time) error {
	a, ok := w.accounts[strings.ToLower(account)]
	if !ok {
		return fmt.Errorf("unknown account %q", account)
	}
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	local := now.In(a.Location)
	today := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, a.Location)
	for _, day := range []time.Time{today.AddDate(0, 0, -1), today} {
		rs, err := w.o.Store.Replies(a.Login, day, day.AddDate(0, 0, 1))
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			continue
		}
		name := day.Format("2006-01-02") + ".csv"
		err = w.files.write(filepath.Join(a.Dir, "replies"), name, true, false, func(bw *bufio.Writer) error {
			cw := csv.NewWriter(bw)
			cw.UseCRLF = true
			_ = cw.Write([]string{"received", "from", "batch", "line", "message_id", "text"})
			for _, r := range rs {
				b, l := "", ""
				if r.Batch != 0 {
					b, l = strconv.FormatUint(r.Batch, 10), strconv.Itoa(r.Line)
				}
				_ = cw.Write([]string{r.Received.UTC().Format(time.RFC3339), r.From, b, l, r.MessageID(), r.Text})
			}
			cw.Flush()
			return cw.Error()
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Startup takes over the hidden files an earlier run left, then renders
// every batch whose final results are not on disk yet.
func (w *Writer) Startup() error {
	w.writeMu.Lock()
	for _, a := range w.accounts {
		for _, d := range []string{"results", "replies"} {
			if err := w.files.adopt(filepath.Join(a.Dir, d)); err != nil {
				w.writeMu.Unlock()
				return err
			}
		}
	}
	w.writeMu.Unlock()
	bs, err := w.o.Store.BatchesWhere(func(b *state.Batch) bool { return !b.ResultsFinal })
	if err != nil {
		return err
	}
	for _, b := range bs {
		if _, err := w.WriteBatch(b.ID); err != nil {
			w.o.Logger.Error("write results at start-up", "batch", b.ID, "err", err)
		}
	}
	return w.makeDurable(w.o.Clock.Now())
}

// Forget removes the result files of a batch swept by retention: NAME.report
// and NAME.csv when they are still this batch's, else NAME.<id>.*.
func (w *Writer) Forget(b *state.Batch) error {
	a, ok := w.accounts[strings.ToLower(b.Account)]
	if !ok {
		return nil
	}
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	dir := filepath.Join(a.Dir, "results")
	bases := []string{fmt.Sprintf("%s.%d", b.Name, b.ID)}
	if id, err := reportBatch(filepath.Join(dir, b.Name+".report")); err == nil && id == b.ID {
		bases = append(bases, b.Name)
	}
	for _, base := range bases {
		for _, ext := range []string{".report", ".csv"} {
			if err := os.Remove(filepath.Join(dir, base+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove results of batch %d: %w", b.ID, err)
			}
		}
	}
	return nil
}

// SweepReplies removes reply files of days that ended before cutoff.
func (w *Writer) SweepReplies(cutoff time.Time) error {
	for _, a := range w.accounts {
		dir := filepath.Join(a.Dir, "replies")
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("sweep replies of %s: %w", a.Login, err)
		}
		for _, e := range ents {
			day, err := time.ParseInLocation("2006-01-02.csv", e.Name(), a.Location)
			if err != nil || !day.AddDate(0, 0, 1).Before(cutoff) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("sweep replies of %s: %w", a.Login, err)
			}
		}
	}
	return nil
}
