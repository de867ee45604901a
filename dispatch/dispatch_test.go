package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
	"smsdrop/sender"
	"smsdrop/state"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// fakeSender records hand-overs and answers from a script.
type fakeSender struct {
	mu     sync.Mutex
	sent   []sender.Message
	answer func(m sender.Message, attempt int) error
	tries  map[string]int
}

var _ sender.Sender = (*fakeSender)(nil)

func (f *fakeSender) Send(_ context.Context, msgs []sender.Message) []sender.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries == nil {
		f.tries = map[string]int{}
	}
	out := make([]sender.Result, len(msgs))
	for i, m := range msgs {
		f.tries[m.ID]++
		if f.answer != nil {
			if err := f.answer(m, f.tries[m.ID]); err != nil {
				out[i].Err = err
				continue
			}
		}
		f.sent = append(f.sent, m)
		for p := range max(m.Segments, 1) {
			out[i].PartIDs = append(out[i].PartIDs, fmt.Sprintf("%s.%d", m.ID, p))
		}
	}
	return out
}

func (f *fakeSender) Run(ctx context.Context, _ sender.EventHandler) error {
	<-ctx.Done()
	return ctx.Err()
}
func (f *fakeSender) Close() error { return nil }

func (f *fakeSender) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

type harness struct {
	t     *testing.T
	store *state.Store
	clk   *clock.Fake
	snd   *fakeSender
	d     *Dispatcher
	stop  func()
}

func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	return newHarnessWrapped(t, o, func(st *state.Store) Store { return st })
}

// newHarnessWrapped is newHarness with the dispatcher's store put behind
// wrap.
func newHarnessWrapped(t *testing.T, o Options, wrap func(*state.Store) Store) *harness {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, clk: clock.NewFake(t0), snd: &fakeSender{}}
	o.Store, o.Sender, o.Clock = wrap(st), h.snd, h.clk
	h.d = New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.Run(ctx) }()
	h.stop = func() { cancel(); <-done; st.Close() }
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) add(n int, sendAt time.Time, scheduled bool, segments int) *state.Batch {
	h.t.Helper()
	p := &batch.Batch{SendAt: sendAt, Scheduled: scheduled, Messages: []batch.Message{{Index: 1, Line: 2}}}
	for i := range n {
		p.Recipients = append(p.Recipients, batch.Recipient{Line: 3 + i, Message: 1, Number: fmt.Sprintf("+4477009%05d", i),
			Text: "hi", Encoding: batch.EncodingGSM, Segments: segments, Status: batch.StatusWait})
	}
	b, err := h.store.CreateBatch(state.NewBatch{Account: "demo", Name: "f.txt", Sum: []byte(fmt.Sprint(n, sendAt)),
		Received: h.clk.Now(), Parsed: p, Validity: time.Hour})
	if err != nil {
		h.t.Fatal(err)
	}
	h.d.Wake()
	return b
}

// addFor stores a batch of n one-part messages for account (named after
// it), without waking the dispatcher.
func (h *harness) addFor(account string, n int) *state.Batch {
	h.t.Helper()
	p := &batch.Batch{SendAt: h.clk.Now(), Messages: []batch.Message{{Index: 1, Line: 2}}}
	for i := range n {
		p.Recipients = append(p.Recipients, batch.Recipient{Line: 3 + i, Message: 1, Number: fmt.Sprintf("+4477009%05d", i),
			Text: "hi", Encoding: batch.EncodingGSM, Segments: 1, Status: batch.StatusWait})
	}
	b, err := h.store.CreateBatch(state.NewBatch{Account: account, Name: account + ".txt", Sum: []byte(account),
		Received: h.clk.Now(), Parsed: p, Validity: time.Hour})
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) waitBatch(id uint64, what string, cond func(*state.Batch) bool) *state.Batch {
	h.t.Helper()
	return h.until(id, 0, what, cond)
}

// until moves the clock by step (if any) whenever the dispatcher is idle,
// until cond holds for batch id.
func (h *harness) until(id uint64, step time.Duration, what string, cond func(*state.Batch) bool) *state.Batch {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := h.store.Batch(id)
		if err == nil && cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for batch %d: %s (now %+v)", id, what, b)
		}
		if step > 0 && h.d.asleep.Load() {
			h.clk.Advance(step)
		}
		time.Sleep(time.Millisecond)
	}
}

// advance waits until the dispatcher is idle, then moves the clock.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !h.d.asleep.Load() {
		if time.Now().After(deadline) {
			h.t.Fatal("dispatcher never went to sleep")
		}
		time.Sleep(time.Millisecond)
	}
	h.clk.Advance(d)
}

func TestSendsEverythingOnce(t *testing.T) {
	h := newHarness(t, Options{})
	b := h.add(2500, t0, false, 1)
	h.waitBatch(b.ID, "all on", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 2500 })
	if n := h.snd.count(); n != 2500 {
		t.Fatalf("sent %d, want 2500", n)
	}
	seen := map[string]bool{}
	for _, m := range h.snd.sent {
		if seen[m.ID] {
			t.Fatalf("%s sent twice", m.ID)
		}
		seen[m.ID] = true
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, Options{Rate: 20})
	b := h.add(50, t0, false, 1)
	h.waitBatch(b.ID, "burst", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 20 })
	// Nothing more goes out until time passes.
	h.advance(0)
	if n := h.snd.count(); n != 20 {
		t.Fatalf("sent %d before time moved, want 20", n)
	}
	h.advance(500 * time.Millisecond)
	h.waitBatch(b.ID, "10 more", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 30 })
	h.advance(time.Second)
	h.waitBatch(b.ID, "all", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 50 })
}

func TestAccountRateCountsParts(t *testing.T) {
	h := newHarness(t, Options{AccountRates: map[string]float64{"demo": 6}})
	b := h.add(10, t0, false, 3) // 3 parts each: 2 messages a second
	h.waitBatch(b.ID, "first two", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 2 })
	h.advance(time.Second)
	h.waitBatch(b.ID, "two more", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 4 })
}

// A message of more parts than the limiter's burst (a second's parts)
// raises the burst until it goes out, then the burst comes back: left
// raised, an account at rate 1 that sent one 7-part message later handed
// over 7 single parts at the same instant.
func TestLongMessageDoesNotRaiseTheBurstForGood(t *testing.T) {
	for name, o := range map[string]Options{
		"account rate": {AccountRates: map[string]float64{"demo": 1}},
		"global rate":  {Rate: 1},
	} {
		t.Run(name, func(t *testing.T) { longThenShort(t, o) })
	}
}

func longThenShort(t *testing.T, o Options) {
	h := newHarness(t, o)
	long := h.add(1, t0, false, 7)
	h.until(long.ID, time.Second, "the 7-part message sent", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 1 })
	h.advance(10 * time.Second) // idle: at most a second's parts saved up
	short := h.add(20, t0.Add(time.Hour), false, 1)
	h.waitBatch(short.ID, "the first sent", func(b *state.Batch) bool { return b.Count(batch.StatusOn) > 0 })
	h.advance(0)
	if b, _ := h.store.Batch(short.ID); b.Count(batch.StatusOn) != 1 {
		t.Errorf("%d single-part messages handed over at one instant, want 1", b.Count(batch.StatusOn))
	}
}

func TestTemporaryFailuresRetryThenExpire(t *testing.T) {
	h := newHarness(t, Options{RetryBase: time.Second})
	h.snd.answer = func(m sender.Message, attempt int) error {
		if m.Line == 3 && attempt <= 3 {
			return &sender.Error{Code: "THROTTLED", Temporary: true}
		}
		if m.Line == 4 {
			return &sender.Error{Code: "THROTTLED", Temporary: true}
		}
		if m.Line == 5 {
			return &sender.Error{Code: "REJECTED:0x0000000B"}
		}
		return nil
	}
	b := h.add(3, t0, false, 1)
	h.until(b.ID, time.Second, "line 3 on after 3 throttles", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 1 })
	b = h.until(b.ID, time.Minute, "line 4 expired", func(b *state.Batch) bool { return b.Count(batch.StatusKO) == 2 })
	msgs, _ := h.store.Messages(b.ID)
	if msgs[1].Code != batch.CodeExpired || msgs[2].Code != "REJECTED:0x0000000B" {
		t.Errorf("codes = %q %q", msgs[1].Code, msgs[2].Code)
	}
	if msgs[0].Attempts != 4 {
		t.Errorf("attempts = %d, want 4", msgs[0].Attempts)
	}
}

// A retry that comes due after the batch's validity (smsdrop stopped, or
// the host suspended, past it) expires: before, it was handed over hours
// late and reported sent.
func TestRetryDueAfterValidityExpires(t *testing.T) {
	h := newHarness(t, Options{RetryBase: 50 * time.Minute})
	h.snd.answer = func(m sender.Message, attempt int) error {
		if attempt == 1 {
			return &sender.Error{Code: "THROTTLED", Temporary: true}
		}
		return nil
	}
	b := h.add(1, t0, false, 1) // validity 1 h
	h.waitBatch(b.ID, "first try refused", func(b *state.Batch) bool {
		msgs, _ := h.store.Messages(b.ID)
		return len(msgs) == 1 && msgs[0].Attempts == 1 && !msgs[0].NextTry.IsZero()
	})
	h.advance(3 * time.Hour) // the retry is due, the validity long past
	b = h.waitBatch(b.ID, "expired", func(b *state.Batch) bool { return b.Count(batch.StatusWait) == 0 })
	msgs, _ := h.store.Messages(b.ID)
	if msgs[0].Status != batch.StatusKO || msgs[0].Code != batch.CodeExpired {
		t.Errorf("message %s %s, want ko EXPIRED", msgs[0].Status, msgs[0].Code)
	}
	if n := h.snd.count(); n != 0 {
		t.Errorf("handed over %d times after the validity", n)
	}
	if r, _, _ := h.store.DueRetries(t0.Add(4*time.Hour), nil, 10, nil); len(r) != 0 {
		t.Errorf("retry entries left: %v", r)
	}
}

func TestScheduledBatchWaitsForItsTime(t *testing.T) {
	var started []uint64
	var mu sync.Mutex
	h := newHarness(t, Options{OnStart: func(b *state.Batch) error {
		mu.Lock()
		started = append(started, b.ID)
		mu.Unlock()
		return nil
	}})
	b := h.add(2, t0.Add(time.Hour), true, 1)
	h.advance(59 * time.Minute)
	h.advance(0)
	if n := h.snd.count(); n != 0 {
		t.Fatalf("sent %d before its time", n)
	}
	h.advance(time.Minute)
	h.waitBatch(b.ID, "sent at its time", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if len(started) != 1 || started[0] != b.ID {
		t.Errorf("OnStart calls = %v", started)
	}
}

func TestCancelStopsSending(t *testing.T) {
	h := newHarness(t, Options{Rate: 5})
	b := h.add(20, t0, false, 1)
	h.waitBatch(b.ID, "first burst", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 5 })
	h.d.Cancel(b.ID)
	b = h.waitBatch(b.ID, "cancelled", func(b *state.Batch) bool { return b.State == state.Cancelled })
	if b.Count(batch.StatusKO) != 15 {
		t.Errorf("counts = %v", b.Counts)
	}
	h.advance(10 * time.Second)
	if n := h.snd.count(); n != 5 {
		t.Errorf("sent %d after cancel, want 5", n)
	}
}

func TestEventsStoredBeforeAck(t *testing.T) {
	h := newHarness(t, Options{OptoutKeywords: []string{"STOP", "STOP SMS"}})
	b := h.add(1, t0, false, 1)
	h.waitBatch(b.ID, "on", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 1 })
	err := h.d.HandleEvents(context.Background(), []sender.Event{
		{Kind: sender.Receipt, PartID: fmt.Sprintf("%d-3.0", b.ID), Status: batch.StatusOK, At: t0},
		{Kind: sender.Reply, From: "+447700900000", Text: "  stop   sms ", At: t0},
	})
	if err != nil {
		t.Fatal(err)
	}
	// HandleEvents returned: the effect must already be stored.
	b, _ = h.store.Batch(b.ID)
	if b.Count(batch.StatusRep) != 1 || b.State != state.Done {
		t.Fatalf("after events: %s %v", b.State, b.Counts)
	}
	if opt, _ := h.store.OptedOut("demo"); !opt["+447700900000"] {
		t.Error("STOP SMS did not opt the number out")
	}
}

// A reply whose sender the provider gives in national form is read in the
// account's country: before, "07400 123456" matched no message (stored as
// "+447400123456"), and a STOP left the number sendable.
func TestNationalReplySenderMatched(t *testing.T) {
	h := newHarness(t, Options{OptoutKeywords: []string{"STOP"}, Countries: map[string]string{"demo": "GB"}})
	p := &batch.Batch{SendAt: t0, Messages: []batch.Message{{Index: 1, Line: 2}}, Recipients: []batch.Recipient{{Line: 3, Message: 1,
		Number: "+447400123456", Text: "hi", Encoding: batch.EncodingGSM, Segments: 1, Status: batch.StatusWait}}}
	b, err := h.store.CreateBatch(state.NewBatch{Account: "demo", Name: "n.txt", Sum: []byte("n"), Received: t0, Parsed: p, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h.d.Wake()
	h.waitBatch(b.ID, "on", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 1 })
	if err := h.d.HandleEvents(context.Background(), []sender.Event{{Kind: sender.Reply, From: "07400 123456", Text: "STOP", At: t0}}); err != nil {
		t.Fatal(err)
	}
	if b, _ = h.store.Batch(b.ID); b.Count(batch.StatusRep) != 1 {
		t.Errorf("counts %v: the reply matched no message", b.Counts)
	}
	if opt, _ := h.store.OptedOut("demo"); !opt["+447400123456"] {
		t.Errorf("opt-outs %v, want +447400123456", opt)
	}
}

func BenchmarkDispatch(b *testing.B) {
	st, err := state.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const per = 2000
	snd := &fakeSender{}
	d := New(Options{Store: st, Sender: snd, Clock: clock.Real{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	b.ResetTimer()
	var ids []uint64
	for i := 0; i < b.N; i += per {
		p := &batch.Batch{SendAt: time.Now(), Messages: []batch.Message{{Index: 1, Line: 2}}}
		for j := range min(per, b.N-i) {
			p.Recipients = append(p.Recipients, batch.Recipient{Line: 3 + j, Message: 1, Number: fmt.Sprintf("+4477009%05d", j),
				Text: "hello there", Encoding: batch.EncodingGSM, Segments: 1, Status: batch.StatusWait})
		}
		nb, err := st.CreateBatch(state.NewBatch{Account: "demo", Name: "f", Sum: []byte(fmt.Sprint(i)), Received: time.Now(), Parsed: p, Validity: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, nb.ID)
		d.Wake()
	}
	for _, id := range ids {
		for {
			bb, _ := st.Batch(id)
			if bb.Count(batch.StatusWait) == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "parts/s")
	cancel()
	<-done
}

func TestReplyAccountBySenderID(t *testing.T) {
	d := New(Options{SenderIDs: map[string]string{"shop": "SHOP", "bank": "+447000000001", "a": "SAME", "b": "same"}})
	tests := []struct {
		ev   sender.Event
		want string
	}{
		{sender.Event{To: "shop"}, "shop"},
		{sender.Event{To: "447000000001"}, "bank"},
		{sender.Event{To: "SAME"}, ""}, // two accounts: the most recent message decides
		{sender.Event{To: "OTHER"}, ""},
		{sender.Event{To: "SHOP", Account: "x"}, "x"},
	}
	for _, tt := range tests {
		if got := d.replyAccount(tt.ev); got != tt.want {
			t.Errorf("reply to %q: account %q, want %q", tt.ev.To, got, tt.want)
		}
	}
}

// Batches whose every message was handed over only wait for receipts: the
// tick that hands over a batch's last message takes it out of the batches
// a tick reads, so thousands of them cost a tick nothing.
func TestHandedBatchesLeaveThePick(t *testing.T) {
	h := newHarness(t, Options{Rate: 20})
	var done []*state.Batch
	for range 5 {
		done = append(done, h.add(3, t0, false, 1)) // 15 parts: within the first second's 20
	}
	for _, b := range done {
		h.waitBatch(b.ID, "all on", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 3 })
	}
	slow := h.add(50, t0, false, 1)
	h.waitBatch(slow.ID, "the rest of the burst", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 5 })
	h.advance(0)
	fresh, err := allFresh(h.store)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 1 || fresh[0].ID != slow.ID {
		t.Fatalf("fresh batches = %v, want only %d (the others were handed over)", ids(fresh), slow.ID)
	}
	for _, b := range done {
		got, err := h.store.Batch(b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != state.Sending || got.Cursor != 5 {
			t.Fatalf("batch %d: %s, cursor %d; want sending (waiting for receipts), cursor 5", b.ID, got.State, got.Cursor)
		}
	}
	b := h.until(slow.ID, 100*time.Millisecond, "all on", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 50 })
	if b.Cursor != 52 {
		t.Fatalf("cursor = %d, want 52", b.Cursor)
	}
	h.advance(0)
	if fresh, _ = allFresh(h.store); len(fresh) != 0 {
		t.Fatalf("fresh batches = %v after everything was handed over", ids(fresh))
	}
	if n := h.snd.count(); n != 65 {
		t.Fatalf("sent %d, want 65", n)
	}
}

// allFresh reads every account's fresh batches.
func allFresh(s *state.Store) ([]*state.Batch, error) {
	accts, err := s.FreshAccounts()
	if err != nil {
		return nil, err
	}
	var out []*state.Batch
	for _, a := range accts {
		bs, err := s.FreshBatches(a, 0, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	return out, nil
}

func ids(bs []*state.Batch) []uint64 {
	var out []uint64
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestAffordable(t *testing.T) {
	tests := []struct {
		name          string
		global, acct  float64
		spent         int // parts already sent from the demo account's limiters
		want          int
		otherAccounts bool
	}{
		{"unlimited", 0, 0, 0, math.MaxInt, false},
		{"global burst", 20, 0, 0, 20, false},
		{"global partly spent", 20, 0, 15, 5, false},
		{"account slower", 20, 6, 0, 6, false},
		{"all spent: still one, to learn the wait", 20, 0, 20, 1, false},
		{"another account's limit does not count", 20, 0, 0, 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rates := map[string]float64{}
			if tt.acct > 0 {
				rates["demo"] = tt.acct
			}
			if tt.otherAccounts {
				rates["other"] = 2
			}
			d := New(Options{Rate: tt.global, AccountRates: rates})
			if tt.spent > 0 {
				if ok, _, _ := d.allow(t0, "demo", tt.spent); !ok {
					t.Fatal("setup: parts refused")
				}
			}
			if got := d.affordable(t0, "Demo"); got != tt.want {
				t.Fatalf("affordable = %d, want %d", got, tt.want)
			}
		})
	}
}

// An account over its own rate waits alone: the other accounts' messages
// go out meanwhile.
func TestAccountRateDoesNotHoldOthers(t *testing.T) {
	h := newHarness(t, Options{AccountRates: map[string]float64{"slow": 1}})
	add := h.addFor
	slow := add("slow", 5) // first in id order
	h.d.Wake()
	h.waitBatch(slow.ID, "its first message", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 1 })
	h.advance(0) // the slow account is out of tokens, and the dispatcher waits
	fast := add("fast", 5)
	h.d.Wake()
	h.waitBatch(fast.ID, "the other account's messages at once", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 5 })
	if b, _ := h.store.Batch(slow.ID); b.Count(batch.StatusOn) != 1 {
		t.Fatalf("slow account: %d on, want 1 (its rate is 1/s)", b.Count(batch.StatusOn))
	}
	h.advance(time.Second)
	h.waitBatch(slow.ID, "one more a second later", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 2 })
}

// Retries are read a page at a time, no more than the global limit lets
// through; a held account's retries at the head must not hide the others'.
func TestHeldAccountRetriesDoNotHideOthers(t *testing.T) {
	h := newHarness(t, Options{Rate: 2, AccountRates: map[string]float64{"slow": 1}, RetryBase: time.Minute})
	h.snd.answer = func(m sender.Message, attempt int) error {
		if attempt == 1 {
			return &sender.Error{Code: "THROTTLED", Temporary: true}
		}
		return nil
	}
	tried := func(b *state.Batch, n int) func(*state.Batch) bool {
		return func(*state.Batch) bool {
			msgs, _ := h.store.Messages(b.ID)
			got := 0
			for _, m := range msgs {
				if m.Attempts > 0 {
					got++
				}
			}
			return got == n
		}
	}
	// The slow account's two messages fail at t0 and t0+1s, the other
	// account's at t0+2s: their retries are due in that order.
	slow := h.addFor("slow", 2)
	h.d.Wake()
	h.waitBatch(slow.ID, "first attempt", tried(slow, 1))
	h.advance(time.Second)
	h.waitBatch(slow.ID, "second attempt", tried(slow, 2))
	h.advance(time.Second)
	fast := h.addFor("fast", 1)
	h.d.Wake()
	h.waitBatch(fast.ID, "first attempt", tried(fast, 1))
	// All three due: the slow account may send one, the global limit two.
	h.advance(2 * time.Minute)
	h.waitBatch(fast.ID, "its retry behind the slow account's two", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 1 })
	if b, _ := h.store.Batch(slow.ID); b.Count(batch.StatusOn) != 1 {
		t.Fatalf("slow account: %d on, want 1", b.Count(batch.StatusOn))
	}
}

// Under the global limit, accounts take turns: one account's file does not
// hold another's back until it is all sent.
func TestAccountsTakeTurns(t *testing.T) {
	h := newHarness(t, Options{Rate: 1})
	alpha := h.addFor("alpha", 4)
	h.d.Wake()
	h.waitBatch(alpha.ID, "the first second's part", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 1 })
	beta := h.addFor("beta", 4)
	h.d.Wake()
	var order []string
	last := map[uint64]int{alpha.ID: 1, beta.ID: 0}
	for range 6 {
		h.advance(time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, _ := h.store.Batch(alpha.ID)
			b, _ := h.store.Batch(beta.ID)
			if n := a.Count(batch.StatusOn); n > last[alpha.ID] {
				last[alpha.ID] = n
				order = append(order, "alpha")
				break
			}
			if n := b.Count(batch.StatusOn); n > last[beta.ID] {
				last[beta.ID] = n
				order = append(order, "beta")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing sent after %d s", len(order)+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if got, want := fmt.Sprint(order), "[beta alpha beta alpha beta alpha]"; got != want {
		t.Fatalf("order after alpha's first part = %s, want %s", got, want)
	}
}

// A retry already due that a rate limit holds back is waited for with the
// limit, not at once: the loop spun, a tick a millisecond, before.
func TestNextWakeWithALimitedRetry(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := New(Options{Store: st, Clock: clock.NewFake(t0)})
	h := &harness{t: t, store: st, clk: clock.NewFake(t0)}
	b := h.addFor("demo", 2)
	k1, k2 := state.Key{Batch: b.ID, Line: 3}, state.Key{Batch: b.ID, Line: 4}
	for _, tk := range []*state.Tick{
		{Now: t0, Handovers: []state.Key{k1, k2}},
		{Now: t0, Outcomes: []state.Outcome{
			{Key: k1, Err: "THROTTLED", Temporary: true, NextTry: t0.Add(time.Second)},
			{Key: k2, Err: "THROTTLED", Temporary: true, NextTry: t0.Add(time.Minute)}}},
	} {
		if _, err := st.Commit(tk); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		now     time.Time
		limited time.Duration
		want    time.Duration
	}{
		{"retry ahead", t0, -1, time.Second},
		{"retry ahead, limit sooner", t0, 300 * time.Millisecond, 300 * time.Millisecond},
		{"retry due, no limit: at once", t0.Add(2 * time.Second), -1, 0},
		{"retry due, held by the limit: the limit", t0.Add(2 * time.Second), 300 * time.Millisecond, 300 * time.Millisecond},
		{"retry due, held by a long limit: the next retry", t0.Add(2 * time.Second), 2 * time.Minute, time.Minute - 2*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.nextWake(tt.now, tt.limited); got != tt.want {
				t.Fatalf("nextWake = %v, want %v", got, tt.want)
			}
		})
	}
}

// Once Run has returned (a store error ends it), Cancel and HandleEvents
// return at once. Cancel used a blocking send into a 64-entry channel
// nobody read any more: the 65th deletion blocked the watcher or the FTP
// session reporting it for good, and then the shutdown (found by review).
func TestCancelAfterRunStopped(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := New(Options{Store: st, Sender: &fakeSender{}, Clock: clock.NewFake(t0)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			d.Cancel(uint64(i + 1))
		}
		if err := d.HandleEvents(context.Background(), []sender.Event{{Kind: sender.Receipt, PartID: "p"}}); err == nil {
			t.Error("HandleEvents after Run stopped returned no error")
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Cancel or HandleEvents blocked after Run stopped")
	}
}

// failingStore refuses commits while fail says so, as a full disk does.
type failingStore struct {
	*state.Store
	fail     func(t *state.Tick) bool
	mu       sync.Mutex
	refused  int
	outcomes int // outcomes in refused commits
}

func (f *failingStore) Commit(t *state.Tick) (state.TickResult, error) {
	f.mu.Lock()
	refuse := f.fail(t)
	if refuse {
		f.refused++
		f.outcomes += len(t.Outcomes)
	}
	f.mu.Unlock()
	if refuse {
		return state.TickResult{}, errors.New("no space left on device")
	}
	return f.Store.Commit(t)
}

// A store that refuses commits for a while: the dispatcher tries again,
// stores the outcome of what it had handed over, and sends nothing twice.
// Before, Run returned on the first refusal, and nothing was sent until a
// restart.
func TestStoreFailureIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(n int, t *state.Tick) bool // n: commits with work seen so far
	}{
		{"hand-overs refused", func(n int, t *state.Tick) bool { return len(t.Handovers) > 0 && n <= 3 }},
		{"outcomes refused", func(n int, t *state.Tick) bool { return len(t.Outcomes) > 0 && n <= 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fs *failingStore
			seen := 0
			h := newHarnessWrapped(t, Options{}, func(st *state.Store) Store {
				fs = &failingStore{Store: st, fail: func(tk *state.Tick) bool {
					if len(tk.Handovers)+len(tk.Outcomes) > 0 {
						seen++
					}
					return tc.fail(seen, tk)
				}}
				return fs
			})
			b := h.add(3, t0, false, 1)
			h.until(b.ID, time.Second, "all on", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 3 })
			fs.mu.Lock()
			refused, lost := fs.refused, fs.outcomes
			fs.mu.Unlock()
			if refused == 0 {
				t.Fatal("no commit was refused: the test tests nothing")
			}
			if tc.name == "outcomes refused" && lost == 0 {
				t.Fatal("no outcome was refused")
			}
			if n := h.snd.count(); n != 3 {
				t.Fatalf("handed over %d times, want 3 (once each)", n)
			}
			if err := h.d.Healthy(); err != nil {
				t.Errorf("Healthy after the store came back: %v", err)
			}
		})
	}
}

// While every tick fails (here a store that refuses all commits), Healthy
// says why, so /healthz answers 503: store.Ping cannot see a record the
// dispatcher cannot read, and sending had stopped silently.
func TestHealthyWhileTicksFail(t *testing.T) {
	h := newHarnessWrapped(t, Options{}, func(st *state.Store) Store {
		return &failingStore{Store: st, fail: func(tk *state.Tick) bool { return len(tk.Handovers) > 0 }}
	})
	if err := h.d.Healthy(); err != nil {
		t.Fatalf("Healthy before any failure: %v", err)
	}
	h.add(1, t0, false, 1)
	deadline := time.Now().Add(10 * time.Second)
	for h.d.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Healthy still nil while every hand-over fails to commit")
		}
		if h.d.asleep.Load() {
			h.clk.Advance(time.Second)
		}
		time.Sleep(time.Millisecond)
	}
	if err := h.d.Healthy(); !strings.Contains(err.Error(), "no space left") {
		t.Errorf("Healthy = %v", err)
	}
}

// Healthy stays failing until a tick writes: when only receipts arrive and
// their commit fails, the next tick is empty (the failed events are
// dropped, to be delivered again) and commits nothing. Before, that empty
// tick cleared Healthy, and /healthz flapped to 200 while nothing could be
// stored.
func TestHealthyNotClearedByAnEmptyTick(t *testing.T) {
	h := newHarnessWrapped(t, Options{}, func(st *state.Store) Store {
		return &failingStore{Store: st, fail: func(tk *state.Tick) bool { return len(tk.Receipts) > 0 }}
	})
	if err := h.d.HandleEvents(context.Background(), []sender.Event{{Kind: sender.Receipt, PartID: "p", Status: batch.StatusOK, At: t0}}); err == nil {
		t.Fatal("events stored by a failing store")
	}
	for range 20 {
		h.advance(time.Second) // empty ticks commit nothing
		if err := h.d.Healthy(); err == nil {
			t.Fatal("Healthy cleared by a tick that wrote nothing")
		}
	}
}

// Each hand-over carries its batch's validity end, for providers that can
// stop trying then (SMPP validity_period), first tries and retries alike.
func TestHandOverCarriesDeadline(t *testing.T) {
	h := newHarness(t, Options{RetryBase: time.Second})
	h.snd.answer = func(m sender.Message, attempt int) error {
		if m.Line == 4 && attempt == 1 {
			return &sender.Error{Code: "THROTTLED", Temporary: true}
		}
		return nil
	}
	b := h.add(2, t0, false, 1)
	h.until(b.ID, time.Second, "both on", func(b *state.Batch) bool { return b.Count(batch.StatusOn) == 2 })
	h.snd.mu.Lock()
	defer h.snd.mu.Unlock()
	for _, m := range h.snd.sent {
		if !m.Deadline.Equal(b.Deadline) || m.Deadline.IsZero() {
			t.Errorf("line %d handed over with deadline %v, want the batch's %v", m.Line, m.Deadline, b.Deadline)
		}
	}
}
