// Package dispatch sends due messages: it promotes scheduled batches when
// their time comes, hands messages to the sender at the configured rates,
// retries transient failures until the batch's validity ends, and stores
// receipts and replies. It is the only caller of sender.Send, and it writes
// every change of a tick in one store transaction.
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"smsdrop/batch"
	"smsdrop/clock"
	"smsdrop/sender"
	"smsdrop/state"
)

// Store is what the dispatcher needs of the store; *state.Store is it.
// Tests put a failing store in front of the real one.
type Store interface {
	PromoteDue(now time.Time) ([]*state.Batch, error)
	Commit(t *state.Tick) (state.TickResult, error)
	FreshAccounts() ([]string, error)
	FreshBatches(account string, after uint64, max int) ([]*state.Batch, error)
	FreshMessages(id uint64, after, max int) ([]*state.Message, int, error)
	DueRetries(now time.Time, after []byte, max int, skip func(account string) bool) ([]state.Retry, []byte, error)
	NextDue() (time.Time, bool)
	NextRetry(from time.Time) (time.Time, bool)
	NextReceiptCheck() (time.Time, bool)
}

var _ Store = (*state.Store)(nil)

// Options configure a Dispatcher.
type Options struct {
	Store  Store
	Sender sender.Sender
	Clock  clock.Clock
	Logger *slog.Logger
	// Rate is the global limit in parts per second; 0 means unlimited.
	Rate float64
	// AccountRates are per-account limits in parts per second (0 or absent:
	// only the global rate).
	AccountRates map[string]float64
	// SenderIDs are the accounts' approved sender names.
	SenderIDs map[string]string
	// Countries are the accounts' countries (lower-case login → ISO
	// code): a reply's sender given in national form is read in its
	// account's country, or in the one country every account has.
	Countries map[string]string
	// ReceiptTimeout turns parts without a receipt into "no"; 0 = never.
	ReceiptTimeout time.Duration
	// OptoutKeywords are reply texts that opt a number out.
	OptoutKeywords []string
	// MaxPerTick caps the messages handed over in one tick (default 1000).
	MaxPerTick int
	// RetryBase is the first retry delay, doubled each attempt up to
	// RetryMax (defaults 5s and 10m).
	RetryBase, RetryMax time.Duration
	// SendTimeout bounds one Send call, also at shutdown (default 30s).
	SendTimeout time.Duration
	// MinTick spaces the ticks that write to the store: each commit waits
	// for two fsyncs, and while new files keep coming, a tick per file
	// would take the disk from the intake. Measured on the real clock (it
	// paces the disk, not the schedule); 0 means no pause.
	MinTick time.Duration
	// OnChange is told which batches changed (for the results writer).
	OnChange func(ids []uint64)
	// OnFinal is told, just before OnChange, which of them are in a final
	// state now; may be nil.
	OnFinal func(ids []uint64)
	// OnReplies is told which accounts got replies.
	OnReplies func(accounts []string)
	// OnStart is called when a scheduled batch starts sending, to move its
	// file from scheduled/ to archive/. An error (the file was deleted)
	// cancels the batch.
	OnStart func(b *state.Batch) error
	// OnStatuses is told how many status changes each tick made, by the
	// status reached (for metrics); may be nil.
	OnStatuses func(map[batch.Status]int)
	// OnSent is told how many parts were handed over, and how long the
	// provider took (for metrics); may be nil.
	OnSent func(parts int, took time.Duration)
}

// Dispatcher is the send loop. Run it once.
type Dispatcher struct {
	o       Options
	wake    chan struct{}
	cancels chan uint64
	// stopped is closed when Run returns, so that Cancel and HandleEvents
	// never wait for a dispatcher that is gone (a store error ends Run).
	stopped  chan struct{}
	stopOnce sync.Once
	events   chan eventReq
	global   *rate.Limiter
	accounts map[string]*rate.Limiter
	// turn is the last account whose fresh messages a tick handed over.
	turn   string
	picked map[state.Key]picked
	// asleep is true while Run waits for something to do; tests use it to
	// move a fake clock only once the loop is idle.
	asleep atomic.Bool
	// country is the one country every account has, "" when they differ:
	// a reply whose account is unknown is read in it (see replyFrom).
	country string
	// failing holds the store error of the last tick while ticks fail
	// (see Healthy); nil once one commits.
	failing atomic.Pointer[error]
	// held are what arrived for the next tick (see collect).
	heldCancels []uint64
	heldEvents  []eventReq
}

type eventReq struct {
	receipts []state.Receipt
	replies  []state.IncomingReply
	done     chan error
}

// New returns a dispatcher.
func New(o Options) *Dispatcher {
	if o.MaxPerTick <= 0 {
		o.MaxPerTick = 1000
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 5 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Minute
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		o:        o,
		wake:     make(chan struct{}, 1),
		cancels:  make(chan uint64, 64),
		stopped:  make(chan struct{}),
		events:   make(chan eventReq),
		accounts: map[string]*rate.Limiter{},
		picked:   map[state.Key]picked{},
	}
	d.global = newLimiter(o.Rate)
	for _, c := range o.Countries {
		if d.country != "" && c != d.country {
			d.country = ""
			break
		}
		d.country = c
	}
	for a, r := range o.AccountRates {
		if r > 0 {
			d.accounts[strings.ToLower(a)] = newLimiter(r)
		}
	}
	return d
}

func newLimiter(r float64) *rate.Limiter {
	if r <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r), baseBurst(rate.Limit(r)))
}

// Wake tells the dispatcher that a new batch was stored.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Cancel asks the dispatcher to cancel batch id (its file was deleted).
// Once Run has returned it does nothing: the next start's reconciliation
// finds the file gone and cancels the batch. Before, it blocked for good
// after 64 deletions, and with it the watcher or the FTP session that
// reported the deletion, and then the shutdown.
func (d *Dispatcher) Cancel(id uint64) {
	select {
	case d.cancels <- id:
		d.Wake()
	case <-d.stopped:
	}
}

// HandleEvents is the sender's EventHandler: it returns once the events are
// stored, so the driver acknowledges them only then.
func (d *Dispatcher) HandleEvents(ctx context.Context, evs []sender.Event) error {
	req := eventReq{done: make(chan error, 1)}
	for _, e := range evs {
		switch e.Kind {
		case sender.Receipt:
			req.receipts = append(req.receipts, state.Receipt{PartID: e.PartID, Status: e.Status, Code: e.Code, At: e.At})
		case sender.Reply:
			acct := d.replyAccount(e)
			req.replies = append(req.replies, state.IncomingReply{From: d.replyFrom(e.From, acct), Account: acct, Text: e.Text, At: e.At, OptOut: d.isOptout(e.Text)})
		}
	}
	select {
	case d.events <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		return errStopped
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		return errStopped
	}
}

// errStopped answers events that arrive after Run returned: the driver
// does not acknowledge them, and the provider delivers them again.
var errStopped = errors.New("dispatcher stopped")

// replyAccount narrows a reply to the account whose sender id it was sent
// to, when exactly one account has that sender id; "" matches the most
// recent message to the number across accounts.
func (d *Dispatcher) replyAccount(e sender.Event) string {
	if e.Account != "" || e.To == "" {
		return e.Account
	}
	found := ""
	for acct, id := range d.o.SenderIDs {
		if id != "" && strings.EqualFold(strings.TrimPrefix(id, "+"), strings.TrimPrefix(e.To, "+")) {
			if found != "" {
				return ""
			}
			found = acct
		}
	}
	return found
}

// replyFrom puts a reply's sender in E.164, as recipients are stored, when
// the provider gave it in national form ("07700900123"): else the reply
// matched no message, and a STOP left the number sendable.
func (d *Dispatcher) replyFrom(from, account string) string {
	if strings.HasPrefix(from, "+") || from == "" {
		return from
	}
	country := cmp.Or(d.o.Countries[strings.ToLower(account)], d.country)
	if country == "" {
		return from // accounts of several countries: no way to tell
	}
	if n, ok := batch.E164(from, country); ok {
		return n
	}
	return from
}

func (d *Dispatcher) isOptout(text string) bool {
	t := strings.Join(strings.Fields(text), " ")
	for _, k := range d.o.OptoutKeywords {
		if strings.EqualFold(t, strings.TrimSpace(k)) {
			return true
		}
	}
	return false
}

// collect moves into t the cancels and events that woke the loop, and
// whatever else has arrived meanwhile, without blocking; it returns the
// event senders to answer once t is stored.
func (d *Dispatcher) collect(t *state.Tick, waiters []chan error) []chan error {
	for more := true; more; {
		select {
		case id := <-d.cancels:
			d.heldCancels = append(d.heldCancels, id)
		case req := <-d.events:
			d.heldEvents = append(d.heldEvents, req)
		default:
			more = false
		}
	}
	t.Cancels = append(t.Cancels, d.heldCancels...)
	for _, req := range d.heldEvents {
		t.Receipts = append(t.Receipts, req.receipts...)
		t.Replies = append(t.Replies, req.replies...)
		waiters = append(waiters, req.done)
	}
	d.heldCancels, d.heldEvents = d.heldCancels[:0], d.heldEvents[:0]
	return waiters
}

// Run sends until ctx is done, then stores the outcome of what is in hand
// and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.stopOnce.Do(func() { close(d.stopped) })
	var (
		outcomes  []state.Outcome
		waiters   []chan error
		tick      state.Tick
		lastWrite time.Time
		failures  int
	)
	// retry keeps what a failed tick had in hand for the next one, and
	// waits: a store that refused a write (a full disk) often takes the
	// next. Before, Run returned, and nothing was sent again until a
	// restart while the FTP server went on accepting files.
	retry := func(err error) {
		d.fail(err, waiters)
		d.failing.Store(&err)
		outcomes = tick.Outcomes
		d.heldCancels = append(d.heldCancels, tick.Cancels...)
		failures++
		wait := min(retryStoreBase<<min(failures-1, 10), retryStoreMax)
		d.o.Logger.Error("store tick failed: trying again", "err", err, "failures", failures, "in", wait.String())
		t := d.o.Clock.NewTimer(wait)
		defer t.Stop()
		d.asleep.Store(true)
		select {
		case <-ctx.Done():
		case <-t.C():
		}
		d.asleep.Store(false)
	}
	for {
		if wait := time.Until(lastWrite.Add(d.o.MinTick)); d.o.MinTick > 0 && wait > 0 && ctx.Err() == nil {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		now := d.o.Clock.Now()
		tick = state.Tick{Now: now, Outcomes: outcomes, ReceiptTimeout: d.o.ReceiptTimeout, Cursors: map[uint64]int{}}
		outcomes = nil
		waiters = waiters[:0]
		stopping := ctx.Err() != nil
		waiters = d.collect(&tick, waiters)
		var changed []uint64
		var wait time.Duration = -1
		if !stopping {
			promoted, err := d.o.Store.PromoteDue(now)
			if err != nil {
				retry(err)
				continue
			}
			for _, b := range promoted {
				changed = append(changed, b.ID)
				if d.o.OnStart != nil {
					if err := d.o.OnStart(b); err != nil {
						d.o.Logger.Info("scheduled file gone at send time: cancelling", "batch", b.ID, "err", err)
						tick.Cancels = append(tick.Cancels, b.ID)
					}
				}
			}
			wait, err = d.pick(now, &tick)
			if err != nil {
				retry(err)
				continue
			}
		}
		res, err := d.o.Store.Commit(&tick)
		if res.Wrote {
			lastWrite = time.Now()
		}
		if err != nil {
			if stopping {
				// What was handed over and not stored becomes
				// UNCONFIRMED at the next start, as after a crash.
				return d.fail(err, waiters)
			}
			retry(err)
			continue
		}
		for _, w := range waiters {
			w <- nil
		}
		if failures > 0 && res.Wrote {
			// Only a tick that wrote proves the store takes writes
			// again: an empty one commits nothing, and the events a
			// failed tick dropped come back only when redelivered.
			failures = 0
			d.failing.Store(nil)
		}
		changed = append(changed, res.Changed...)
		// Replies before batches, so the results writer never renders a
		// report counting replies before it knows the reply file changed.
		if len(res.ReplyAccounts) > 0 && d.o.OnReplies != nil {
			d.o.OnReplies(res.ReplyAccounts)
		}
		if len(res.Final) > 0 && d.o.OnFinal != nil {
			d.o.OnFinal(res.Final)
		}
		if len(changed) > 0 && d.o.OnChange != nil {
			d.o.OnChange(changed)
		}
		if len(res.Statuses) > 0 && d.o.OnStatuses != nil {
			d.o.OnStatuses(res.Statuses)
		}
		if res.UnknownReceipts > 0 {
			d.o.Logger.Warn("receipts for unknown parts ignored", "count", res.UnknownReceipts)
		}
		if len(res.Handed) > 0 {
			outcomes = d.send(ctx, res.Handed, &tick)
			continue
		}
		if stopping {
			return nil
		}
		if len(tick.Cancels) > 0 || len(tick.Expired) > 0 {
			continue
		}
		d.sleep(ctx, now, wait)
	}
}

// Healthy reports the store error that keeps the dispatcher from sending,
// while it lasts: a commit refused (a full disk), or a record it cannot
// read, which store.Ping does not see. /healthz answers 503 meanwhile.
func (d *Dispatcher) Healthy() error {
	if err := d.failing.Load(); err != nil {
		return fmt.Errorf("sending stopped by the store: %w", *err)
	}
	return nil
}

// A failed store tick is tried again after retryStoreBase, doubling up to
// retryStoreMax.
const (
	retryStoreBase = 100 * time.Millisecond
	retryStoreMax  = 30 * time.Second
)

// fail answers the events in hand with err: their drivers do not
// acknowledge them, and they come again.
func (d *Dispatcher) fail(err error, waiters []chan error) error {
	for _, w := range waiters {
		w <- err
	}
	return err
}

// sleep waits for the next thing to do: a due time, a retry, a receipt
// timeout, the rate limiter, or news from outside.
func (d *Dispatcher) sleep(ctx context.Context, now time.Time, limited time.Duration) {
	next := d.nextWake(now, limited)
	var timerC <-chan time.Time
	if next >= 0 {
		t := d.o.Clock.NewTimer(max(next, time.Millisecond))
		defer t.Stop()
		timerC = t.C()
	}
	d.asleep.Store(true)
	defer d.asleep.Store(false)
	select {
	case <-ctx.Done():
	case <-d.wake:
	case <-timerC:
	case id := <-d.cancels:
		d.heldCancels = append(d.heldCancels, id)
	case req := <-d.events:
		d.heldEvents = append(d.heldEvents, req)
	}
}

// nextWake says how long the loop may sleep: until the next due time,
// retry or receipt check, or the end of the rate limit's wait (limited,
// -1 for none); -1 means until news from outside.
func (d *Dispatcher) nextWake(now time.Time, limited time.Duration) time.Duration {
	next := time.Duration(-1)
	consider := func(t time.Time, ok bool) {
		if !ok {
			return
		}
		dd := max(t.Sub(now), 0)
		if next < 0 || dd < next {
			next = dd
		}
	}
	consider(d.o.Store.NextDue())
	// Retries already due that the tick left are waiting for a rate limit
	// (limited): waking for them at once made the loop spin, a tick a
	// millisecond, until the limit let them through. Only later ones count
	// then.
	var from time.Time
	if limited >= 0 {
		from = now.Add(time.Nanosecond)
	}
	consider(d.o.Store.NextRetry(from))
	if d.o.ReceiptTimeout > 0 {
		t, ok := d.o.Store.NextReceiptCheck()
		consider(t.Add(d.o.ReceiptTimeout), ok)
	}
	if limited >= 0 && (next < 0 || limited < next) {
		next = limited
	}
	return next
}

// allow takes n parts from the global and the account's limiter, or tells
// how long to wait, and whether the global limiter refused (else the
// account's did).
func (d *Dispatcher) allow(now time.Time, account string, n int) (ok bool, wait time.Duration, global bool) {
	lims := []*rate.Limiter{d.global, d.accounts[strings.ToLower(account)]}
	var rs []*rate.Reservation
	for i, l := range lims {
		if l == nil {
			continue
		}
		if n > l.Burst() {
			// A long message must still be sendable: the limiter may save
			// up n parts' worth while it waits.
			l.SetBurstAt(now, n)
		}
		r := l.ReserveN(now, n)
		if dly := r.DelayFrom(now); !r.OK() || dly > 0 {
			r.CancelAt(now)
			for _, prev := range rs {
				prev.CancelAt(now)
			}
			return false, max(dly, time.Millisecond), i == 0
		}
		rs = append(rs, r)
	}
	// Sent: a raised burst goes back to a second's parts. Left raised, it
	// let later messages go out n at once (an account at rate 1 handed
	// over 7 single parts at the same instant after one 7-part message).
	for _, l := range lims {
		if l != nil && l.Burst() > baseBurst(l.Limit()) {
			l.SetBurstAt(now, baseBurst(l.Limit()))
		}
	}
	return true, 0, false
}

// baseBurst is a limiter's burst: a second's parts, at least one.
func baseBurst(r rate.Limit) int { return max(int(math.Ceil(float64(r))), 1) }

// pick chooses this tick's hand-overs: due retries first, oldest first,
// then fresh messages, the accounts taking turns. It returns how long to
// wait when a rate limiter held messages back, or -1.
//
// The global limit stops the tick. An account's own limit only stops that
// account: its messages wait, and the other accounts' go out (before, an
// account with rate = 1 and a big file held every account's later files).
func (d *Dispatcher) pick(now time.Time, t *state.Tick) (time.Duration, error) {
	clear(d.picked)
	p := picking{now: now, t: t, budget: d.o.MaxPerTick, wait: -1, held: map[string]bool{}}
	skip := func(account string) bool { return p.held[account] }
	// Retries are read a page at a time, no more than the global limit
	// lets through now (each takes a part of it), passing over the held
	// accounts' ones.
	for after := []byte(nil); p.budget > 0; {
		n := min(p.budget, d.affordable(now, ""))
		retries, last, err := d.o.Store.DueRetries(now, after, n, skip)
		if err != nil {
			return -1, err
		}
		for _, r := range retries {
			if !r.Deadline.IsZero() && now.After(r.Deadline) {
				// Retries stop at the validity (SPEC §8), also when
				// the retry came due while smsdrop was stopped.
				p.t.Expired = append(p.t.Expired, state.Key{Batch: r.Batch, Line: r.Line})
				p.budget--
				continue
			}
			if p.held[strings.ToLower(r.Account)] {
				continue // stays due: a later tick takes it
			}
			if !d.take(&p, r.Account, r.Message, r.Deadline) {
				if p.stopped {
					return p.wait, nil
				}
				continue
			}
			p.budget--
		}
		if len(retries) < n {
			break
		}
		after = last
	}
	// Only batches with messages left for a first hand-over are read, a
	// page at a time, until the budget or the rate limit stops the tick:
	// thousands of sending batches that only wait for receipts cost a tick
	// nothing (reading them all made every tick, and a store write of each,
	// grow with them).
	//
	// Accounts take turns: each tick starts with the account after the
	// last one served, so one account's big file does not hold another's
	// back until it is all sent; an account's own files go in the order
	// they were accepted.
	accounts, err := d.o.Store.FreshAccounts()
	if err != nil {
		return -1, err
	}
	start := sort.SearchStrings(accounts, d.turn+"\x00") // the first account after d.turn
	for i := range accounts {
		a := accounts[(start+i)%len(accounts)]
		for after := uint64(0); p.budget > 0 && !p.held[a]; {
			page, err := d.o.Store.FreshBatches(a, after, freshPage)
			if err != nil {
				return -1, err
			}
			for _, b := range page {
				after = b.ID
				if p.budget <= 0 || p.held[a] {
					break
				}
				handed := len(t.Handovers)
				err := d.first(&p, b)
				if len(t.Handovers) > handed {
					d.turn = a
				}
				if err != nil || p.stopped {
					return p.wait, err
				}
			}
			if len(page) < freshPage {
				break
			}
		}
		if p.budget <= 0 {
			break
		}
	}
	return p.wait, nil
}

// freshPage is how many batches pick reads at a time.
const freshPage = 16

// picked is a message a tick offers for hand-over, and its account.
type picked struct {
	m        *state.Message
	account  string
	deadline time.Time
}

// picking is one tick's pick in progress.
type picking struct {
	now    time.Time
	t      *state.Tick
	budget int
	// held are the accounts whose own rate limit refused a message in
	// this tick; stopped is set when the global one did.
	held    map[string]bool
	stopped bool
	// wait is the shortest wait a limiter asked for, or -1.
	wait time.Duration
}

// take hands m over if the limiters allow it now. When one refuses, it
// records the wait, and whose limit it was.
func (d *Dispatcher) take(p *picking, account string, m *state.Message, deadline time.Time) bool {
	ok, wait, global := d.allow(p.now, account, max(m.Segments, 1))
	if !ok {
		if p.wait < 0 || wait < p.wait {
			p.wait = wait
		}
		if global {
			p.stopped = true
		} else {
			p.held[strings.ToLower(account)] = true
		}
		return false
	}
	k := state.Key{Batch: m.Batch, Line: m.Line}
	p.t.Handovers = append(p.t.Handovers, k)
	d.picked[k] = picked{m: m, account: account, deadline: deadline}
	return true
}

// first picks batch b's messages waiting for their first hand-over, up to
// the budget and the rate limits.
func (d *Dispatcher) first(p *picking, b *state.Batch) error {
	// The store has the cursor of every tick committed: a tick that
	// fails to commit stops the dispatcher.
	cur := b.Cursor
	asked := min(p.budget, d.affordable(p.now, b.Account))
	msgs, last, err := d.o.Store.FreshMessages(b.ID, cur, asked)
	if err != nil {
		return err
	}
	expired := p.now.After(b.Deadline)
	for _, m := range msgs {
		if expired {
			p.t.Expired = append(p.t.Expired, state.Key{Batch: m.Batch, Line: m.Line})
			cur = m.Line
			p.budget--
			continue
		}
		if !d.take(p, b.Account, m, b.Deadline) {
			advance(b, cur, p.t)
			return nil
		}
		cur = m.Line
		p.budget--
	}
	// Everything scanned up to last was picked or is not fresh.
	advance(b, max(cur, last), p.t)
	if len(msgs) < asked {
		// The scan reached the batch's last line: no message of it can
		// become fresh again (a hand-over that fails becomes a retry).
		p.t.Exhausted = append(p.t.Exhausted, state.BatchRef{ID: b.ID, Account: b.Account})
	}
	return nil
}

// affordable bounds the messages a tick reads for account to what the rate
// limiters let through now (a message is at least one part), and at least
// one, whose refusal says how long to wait. At 20 parts/s a tick sends one
// or two parts: reading the tick's whole budget of messages each time
// decoded a thousand messages for each one sent.
func (d *Dispatcher) affordable(now time.Time, account string) int {
	n := math.MaxInt
	for _, l := range []*rate.Limiter{d.global, d.accounts[strings.ToLower(account)]} {
		if l != nil {
			n = min(n, int(l.TokensAt(now)))
		}
	}
	return max(n, 1)
}

// advance records that b's first pass got to line cur; the store is
// written only when that is further than it knows.
func advance(b *state.Batch, cur int, t *state.Tick) {
	if cur > b.Cursor {
		t.Cursors[b.ID] = cur
	}
}

// send hands the accepted messages over and turns the answers into outcomes,
// stored by the next tick.
func (d *Dispatcher) send(ctx context.Context, keys []state.Key, t *state.Tick) []state.Outcome {
	msgs := make([]sender.Message, 0, len(keys))
	outs := make([]state.Outcome, 0, len(keys))
	attempts := make([]int, 0, len(keys))
	for _, k := range keys {
		pm, ok := d.picked[k]
		if !ok {
			// Cannot happen: the store accepts only what pick offered. The
			// hand-over mark stays; recovery makes it "no", never re-sent.
			d.o.Logger.Error("hand-over accepted but not picked", "batch", k.Batch, "line", k.Line)
			continue
		}
		m, acct := pm.m, pm.account
		attempts = append(attempts, m.Attempts)
		msgs = append(msgs, sender.Message{ID: m.ID(), Account: acct, Batch: m.Batch, Line: m.Line,
			To: m.Number, From: d.o.SenderIDs[strings.ToLower(acct)], Text: m.Text, Encoding: m.Encoding, Segments: m.Segments,
			Deadline: pm.deadline})
		outs = append(outs, state.Outcome{Key: k})
	}
	// Shutdown must not cut a hand-over in the middle: wait for answers up
	// to SendTimeout even when ctx is cancelled.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.SendTimeout)
	defer cancel()
	start := d.o.Clock.Now()
	results := d.o.Sender.Send(sctx, msgs)
	took := d.o.Clock.Now().Sub(start)
	parts := 0
	for i := range outs {
		if i >= len(results) {
			outs[i].Err, outs[i].Temporary = "NO_ANSWER", true
			outs[i].NextTry = d.o.Clock.Now().Add(d.o.RetryBase)
			continue
		}
		r := results[i]
		if r.Err == nil {
			outs[i].PartIDs = r.PartIDs
			parts += len(r.PartIDs)
			continue
		}
		var se *sender.Error
		code := batch.CodeRejected
		if errors.As(r.Err, &se) && se.Code != "" {
			code = se.Code
		}
		outs[i].Err = code
		if sender.IsTemporary(r.Err) {
			outs[i].Temporary = true
			outs[i].NextTry = d.o.Clock.Now().Add(backoff(d.o.RetryBase, d.o.RetryMax, attempts[i]))
		}
		d.o.Logger.Debug("hand-over refused", "msg", msgs[i].ID, "err", r.Err)
	}
	clear(d.picked)
	if d.o.OnSent != nil {
		d.o.OnSent(parts, took)
	}
	return outs
}

func backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
