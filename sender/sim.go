package sender

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
)

// DefaultSimDeliveryDelay is how long the simulated provider takes to report
// a delivery when SimOptions.DeliveryDelay is zero (SPEC §8).
const DefaultSimDeliveryDelay = time.Second

// SimCodeUnknown is the code of the "no" receipt the simulated provider
// gives numbers ending in 0014: the provider vocabulary's UNKNOWN, "no
// delivery report for the message" (seed 004), as opposed to smsdrop's own
// UNCONFIRMED (a hand-over interrupted by a crash) and NO_RECEIPT (no
// receipt before receipt_timeout).
const SimCodeUnknown = "UNKNOWN"

// Bounds of the wait before a batch of events whose handler failed is
// offered again; the wait doubles from one failure to the next.
const (
	simRetryMin = 100 * time.Millisecond
	simRetryMax = 5 * time.Second
)

// SimOptions configure a Sim.
type SimOptions struct {
	// DeliveryDelay is the time from hand-over to receipt; zero means
	// DefaultSimDeliveryDelay.
	DeliveryDelay time.Duration
	// Outbox is the path of the JSON-lines file every accepted message is
	// appended to; empty means no outbox.
	Outbox string
	// Clock schedules receipts and stamps outbox lines; nil means the wall
	// clock.
	Clock clock.Clock
	// Logger receives outbox and handler failures; nil discards them.
	Logger *slog.Logger
}

// Sim is the embedded simulated provider (SPEC §8). It accepts every
// well-formed message, appends it to the outbox and, DeliveryDelay later,
// reports one receipt per part, chosen by the last four digits of the
// number:
//
//	0013  ko, UNDELIVERED
//	0014  no, SimCodeUnknown
//	0015  ok, then a reply "OK" from the recipient
//	0016  ok, then a reply "STOP" from the recipient
//	else  ok
type Sim struct {
	delay time.Duration
	clk   clock.Clock
	log   *slog.Logger
	path  string

	outMu  sync.Mutex
	out    *os.File // nil without an outbox
	closed bool

	// The delivery queue: groups of events in due order. Due times are
	// taken under qMu and never go backwards, so appending keeps the queue
	// sorted and Run needs one timer, for the head.
	qMu   sync.Mutex
	queue []simDue
	wake  chan struct{} // tells Run the queue went from empty to not empty

	running atomic.Bool
}

var _ Sender = (*Sim)(nil)

// simDue is the events of one Send, due together.
type simDue struct {
	at     time.Time
	events []Event
}

// simLine is one outbox line; the field order is the order on disk.
type simLine struct {
	ID       string         `json:"id"`
	Account  string         `json:"account"`
	Batch    uint64         `json:"batch"`
	Line     int            `json:"line"`
	To       string         `json:"to"`
	From     string         `json:"from"`
	Text     string         `json:"text"`
	Encoding batch.Encoding `json:"encoding"`
	Segments int            `json:"segments"`
	At       string         `json:"at"`
}

// NewSim returns a simulated provider, opening the outbox for append.
func NewSim(opts SimOptions) (*Sim, error) {
	if opts.DeliveryDelay < 0 {
		return nil, fmt.Errorf("sim: negative delivery delay %v", opts.DeliveryDelay)
	}
	s := &Sim{
		delay: cmp.Or(opts.DeliveryDelay, DefaultSimDeliveryDelay),
		clk:   opts.Clock,
		log:   opts.Logger,
		path:  opts.Outbox,
		wake:  make(chan struct{}, 1),
	}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Outbox != "" {
		if err := s.replay(opts.Outbox); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(opts.Outbox, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("sim: open outbox: %w", err)
		}
		if err := s.cutTornLine(f); err != nil {
			f.Close()
			return nil, err
		}
		s.out = f
	}
	return s, nil
}

// Send appends every well-formed message to the outbox in a single write,
// so that a message reported as handed over is on disk even after a
// kill -9, and schedules its receipts. A malformed message (no recipient,
// no part) gets a permanent REJECTED error; a failed outbox write or a
// closed Sim a temporary error for every message of the call.
func (s *Sim) Send(ctx context.Context, msgs []Message) []Result {
	results := make([]Result, len(msgs))
	if err := ctx.Err(); err != nil {
		for i := range results {
			results[i].Err = fmt.Errorf("sim: send: %w", err)
		}
		return results
	}
	now := s.clk.Now()
	at := now.UTC().Format(time.RFC3339Nano)
	var buf bytes.Buffer
	buf.Grow(len(msgs) * 256)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // texts are read by people, keep < > & as typed
	parts := 0
	for _, m := range msgs {
		parts += max(m.Segments, 0) + 1
	}
	events := make([]Event, 0, parts)
	accepted := make([]int, 0, len(msgs))
	for i, m := range msgs {
		if err := simCheck(m); err != nil {
			results[i].Err = err
			continue
		}
		err := enc.Encode(simLine{
			ID: m.ID, Account: m.Account, Batch: m.Batch, Line: m.Line,
			To: m.To, From: m.From, Text: m.Text, Encoding: m.Encoding,
			Segments: m.Segments, At: at,
		})
		if err != nil {
			results[i].Err = &Error{Code: batch.CodeRejected, Err: fmt.Errorf("sim: encode message %s: %w", m.ID, err)}
			continue
		}
		ids := simPartIDs(m.ID, m.Segments)
		results[i].PartIDs = ids
		events = simOutcome(events, m, ids)
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return results
	}
	if err := s.write(buf.Bytes()); err != nil {
		s.log.Error("sim: messages not handed over", "messages", len(accepted), "err", err)
		for _, i := range accepted {
			results[i] = Result{Err: err}
		}
		return results
	}
	s.enqueue(events)
	return results
}

// simPartIDs names the parts after smsdrop's message id, which is never
// handed over twice: the ids are unique, and a restarted Sim can replay the
// receipts a crash lost (see replay).
func simPartIDs(msgID string, segments int) []string {
	ids := make([]string, segments)
	for p := range ids {
		ids[p] = "sim-" + msgID + "-" + strconv.Itoa(p+1)
	}
	return ids
}

// simReplayWindow and simReplayTail bound what a restarted Sim reads back.
const (
	simReplayWindow = time.Hour
	simReplayTail   = 16 << 20
)

// replay schedules again the receipts and replies of the messages handed
// over in the last hour before a restart: a real provider keeps delivering
// them while smsdrop is down, and without this a kill -9 would leave those
// messages "on" until receipt_timeout. Receipts already stored are
// ignored by the store (a status never changes to itself), and so are
// replies already recorded.
func (s *Sim) replay(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("sim: read outbox for replay: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sim: read outbox for replay: %w", err)
	}
	off := max(fi.Size()-simReplayTail, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return fmt.Errorf("sim: read outbox for replay: %w", err)
	}
	if off > 0 {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	since := s.clk.Now().Add(-simReplayWindow)
	var events []Event
	for _, l := range bytes.Split(data, []byte("\n")) {
		var ln simLine
		if len(l) == 0 || json.Unmarshal(l, &ln) != nil {
			continue // a torn last line: its Send never returned
		}
		at, err := time.Parse(time.RFC3339Nano, ln.At)
		if err != nil || at.Before(since) || ln.Segments < 1 {
			continue
		}
		m := Message{ID: ln.ID, Account: ln.Account, Batch: ln.Batch, Line: ln.Line, To: ln.To, From: ln.From, Segments: ln.Segments}
		events = simOutcome(events, m, simPartIDs(m.ID, m.Segments))
	}
	if len(events) > 0 {
		s.log.Info("sim: replaying receipts of messages handed over before the restart", "events", len(events))
		s.enqueue(events)
	}
	return nil
}

// cutTornLine removes a last line without its newline: a kill -9 in the
// middle of a write(2) leaves part of it (the kernel stops copying at a
// page boundary), and the next line appended would be glued to it. Its
// Send never returned, so those messages count as not handed over
// (UNCONFIRMED), as the replay already treats them.
func (s *Sim) cutTornLine(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	end := fi.Size()
	buf := make([]byte, 4096)
	for off := end; off > 0; {
		n := min(int64(len(buf)), off)
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("sim: read outbox %s: %w", s.path, err)
		}
		i := bytes.LastIndexByte(buf[:n], '\n')
		if i < 0 {
			if off == 0 {
				return s.cut(f, 0, end)
			}
			continue
		}
		if keep := off + int64(i) + 1; keep < end {
			return s.cut(f, keep, end)
		}
		return nil
	}
	return nil
}

// cut truncates the outbox to keep bytes, dropping a torn line.
func (s *Sim) cut(f *os.File, keep, end int64) error {
	s.log.Warn("sim: outbox ended in a torn line (a stop during its write); removed it", "outbox", s.path, "bytes", end-keep)
	if err := f.Truncate(keep); err != nil {
		return fmt.Errorf("sim: cut torn line of outbox %s: %w", s.path, err)
	}
	return nil
}

// simCheck refuses what no provider would take.
func simCheck(m Message) error {
	switch {
	case m.To == "":
		return &Error{Code: batch.CodeRejected, Err: fmt.Errorf("sim: message %s: no recipient", m.ID)}
	case m.Segments < 1:
		return &Error{Code: batch.CodeRejected, Err: fmt.Errorf("sim: message %s: %d parts", m.ID, m.Segments)}
	}
	return nil
}

// simOutcome appends the receipts, and the reply if any, that the test
// number m.To calls for.
func simOutcome(events []Event, m Message, ids []string) []Event {
	status, code, reply := batch.StatusOK, "", ""
	switch {
	case strings.HasSuffix(m.To, "0013"):
		status, code = batch.StatusKO, batch.CodeUndelivered
	case strings.HasSuffix(m.To, "0014"):
		status, code = batch.StatusNo, SimCodeUnknown
	case strings.HasSuffix(m.To, "0015"):
		reply = "OK"
	case strings.HasSuffix(m.To, "0016"):
		reply = "STOP"
	}
	for _, id := range ids {
		events = append(events, Event{Kind: Receipt, PartID: id, Status: status, Code: code})
	}
	if reply != "" {
		events = append(events, Event{Kind: Reply, From: m.To, To: m.From, Account: m.Account, Text: reply})
	}
	return events
}

// write appends p to the outbox with one write(2), which O_APPEND keeps
// whole; the lock keeps it whole against Close too.
func (s *Sim) write(p []byte) error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if s.closed {
		return errors.New("sim: closed")
	}
	if s.out == nil {
		return nil
	}
	if _, err := s.out.Write(p); err != nil {
		return fmt.Errorf("sim: append to outbox %s: %w", s.path, err)
	}
	return nil
}

func (s *Sim) enqueue(events []Event) {
	if len(events) == 0 {
		return
	}
	s.qMu.Lock()
	due := s.clk.Now().Add(s.delay)
	if n := len(s.queue); n > 0 && due.Before(s.queue[n-1].at) {
		due = s.queue[n-1].at
	}
	wasEmpty := len(s.queue) == 0
	s.queue = append(s.queue, simDue{at: due, events: events})
	s.qMu.Unlock()
	if wasEmpty {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Run delivers receipts and replies to h as they fall due, all those due
// at once in one call, until ctx is done; then it returns nil. Events sent
// before Run are kept for it. When h fails, the same events (and any that
// fell due meanwhile) are offered again after a backoff. Only one Run may
// go at a time.
func (s *Sim) Run(ctx context.Context, h EventHandler) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run already running")
	}
	defer s.running.Store(false)
	var timer clock.Timer
	arm := func(d time.Duration) <-chan time.Time {
		if timer == nil {
			timer = s.clk.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		return timer.C()
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	backoff := time.Duration(0)
	for {
		s.qMu.Lock()
		var head time.Time
		if len(s.queue) > 0 {
			head = s.queue[0].at
		}
		s.qMu.Unlock()
		var fire <-chan time.Time
		if !head.IsZero() {
			if wait := head.Sub(s.clk.Now()); wait > 0 {
				fire = arm(wait)
			} else {
				err := s.deliver(ctx, h)
				if err == nil {
					backoff = 0
					continue
				}
				if ctx.Err() != nil {
					return nil
				}
				backoff = min(max(2*backoff, simRetryMin), simRetryMax)
				s.log.Warn("sim: event handler failed, retrying", "in", backoff, "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-arm(backoff):
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-fire:
		}
	}
}

// deliver hands every due event to h and drops them from the queue only
// once h has stored them.
func (s *Sim) deliver(ctx context.Context, h EventHandler) error {
	s.qMu.Lock()
	now := s.clk.Now()
	n, size := 0, 0
	for n < len(s.queue) && !s.queue[n].at.After(now) {
		size += len(s.queue[n].events)
		n++
	}
	due := make([]simDue, n)
	copy(due, s.queue[:n])
	s.qMu.Unlock()

	events := make([]Event, 0, size)
	for _, d := range due {
		for _, ev := range d.events {
			ev.At = d.at
			events = append(events, ev)
		}
	}
	if err := h(ctx, events); err != nil {
		return fmt.Errorf("sim: deliver %d events: %w", len(events), err)
	}
	// Only Run removes from the head and Send only appends, so the first n
	// entries are still the ones just delivered.
	s.qMu.Lock()
	clear(s.queue[:n])
	s.queue = s.queue[n:]
	s.qMu.Unlock()
	return nil
}

// Close closes the outbox; Send fails afterwards. Events already scheduled
// are still delivered by a running Run.
func (s *Sim) Close() error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.out == nil {
		return nil
	}
	if err := s.out.Close(); err != nil {
		return fmt.Errorf("sim: close outbox %s: %w", s.path, err)
	}
	return nil
}
