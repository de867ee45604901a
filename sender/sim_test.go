package sender

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
)

const (
	simTestDelay = time.Second
	simWaitFor   = 10 * time.Second // deadline of eventual conditions, never a measured duration
)

var simT0 = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

type simHarness struct {
	t      *testing.T
	clk    *clock.Fake
	sim    *Sim
	outbox string
	calls  chan []Event
	fail   atomic.Int32 // how many more handler calls fail
}

func newSimHarness(t *testing.T) *simHarness {
	t.Helper()
	h := &simHarness{
		t:      t,
		clk:    clock.NewFake(simT0),
		outbox: filepath.Join(t.TempDir(), "sim-outbox.jsonl"),
		calls:  make(chan []Event, 100),
	}
	sim, err := NewSim(SimOptions{DeliveryDelay: simTestDelay, Outbox: h.outbox, Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	h.sim = sim
	return h
}

// run starts Run with a handler that records each call, or fails it while
// h.fail is positive.
func (h *simHarness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- h.sim.Run(ctx, func(_ context.Context, events []Event) error {
			h.calls <- slices.Clone(events)
			if h.fail.Add(-1) >= 0 {
				return errors.New("store unavailable")
			}
			return nil
		})
	}()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
}

// waitArmed waits until Run sleeps on its timer, so that advancing the fake
// clock next cannot race Run's own reading of it.
func (h *simHarness) waitArmed() {
	h.t.Helper()
	deadline := time.Now().Add(simWaitFor)
	for h.clk.Timers() != 1 {
		if time.Now().After(deadline) {
			h.t.Fatal("gave up waiting for Run to arm its timer")
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *simHarness) nextCall() []Event {
	h.t.Helper()
	select {
	case evs := <-h.calls:
		return evs
	case <-time.After(simWaitFor):
		h.t.Fatal("gave up waiting for the handler")
		return nil
	}
}

func (h *simHarness) expectNoCall() {
	h.t.Helper()
	select {
	case evs := <-h.calls:
		h.t.Fatalf("unexpected handler call with %d events", len(evs))
	default:
	}
}

func (h *simHarness) send(msgs ...Message) []Result {
	h.t.Helper()
	res := h.sim.Send(context.Background(), msgs)
	if len(res) != len(msgs) {
		h.t.Fatalf("Send returned %d results for %d messages", len(res), len(msgs))
	}
	return res
}

func (h *simHarness) outboxLines() []map[string]any {
	h.t.Helper()
	f, err := os.Open(h.outbox)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			h.t.Fatalf("outbox line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if err := sc.Err(); err != nil {
		h.t.Fatal(err)
	}
	return lines
}

func msg(id, to string, segments int) Message {
	return Message{
		ID: id, Account: "demo", Batch: 42, Line: 3, To: to, From: "SHOP",
		Text: "Hello", Encoding: batch.EncodingGSM, Segments: segments,
	}
}

func TestNewSimRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts SimOptions
	}{
		{"negative delay", SimOptions{DeliveryDelay: -time.Second}},
		{"outbox in a missing folder", SimOptions{Outbox: filepath.Join(t.TempDir(), "no", "such", "outbox.jsonl")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewSim(tt.opts); err == nil {
				t.Fatal("NewSim succeeded, want an error")
			}
		})
	}
}

func TestSimOutboxLines(t *testing.T) {
	h := newSimHarness(t)
	msgs := []Message{
		{ID: "42-3", Account: "demo", Batch: 42, Line: 3, To: "+447700900001", From: "SHOP",
			Text: "Order #12 <ready> & \"paid\"\nline two", Encoding: batch.EncodingGSM, Segments: 1},
		{ID: "42-4", Account: "demo", Batch: 42, Line: 4, To: "+33612345678",
			Text: "Ça coûte 5 € — merci 😀", Encoding: batch.EncodingUCS2, Segments: 3},
	}
	res := h.send(msgs...)
	h.clk.Advance(time.Minute)
	res = append(res, h.send(msg("43-1", "+447700900002", 1))...)
	msgs = append(msgs, msg("43-1", "+447700900002", 1))

	lines := h.outboxLines()
	if len(lines) != len(msgs) {
		t.Fatalf("outbox has %d lines, want %d", len(lines), len(msgs))
	}
	ats := []time.Time{simT0, simT0, simT0.Add(time.Minute)}
	seen := make(map[string]bool)
	for i, m := range msgs {
		if res[i].Err != nil {
			t.Fatalf("message %s: %v", m.ID, res[i].Err)
		}
		want := map[string]any{
			"id": m.ID, "account": m.Account, "batch": float64(m.Batch), "line": float64(m.Line),
			"to": m.To, "from": m.From, "text": m.Text, "encoding": string(m.Encoding),
			"segments": float64(m.Segments), "at": ats[i].Format(time.RFC3339Nano),
		}
		if !maps.Equal(lines[i], want) {
			t.Errorf("outbox line %d = %v\nwant %v", i+1, lines[i], want)
		}
		at, err := time.Parse(time.RFC3339Nano, lines[i]["at"].(string))
		if err != nil || !at.Equal(ats[i]) {
			t.Errorf("outbox line %d: at %v (%v), want %v", i+1, lines[i]["at"], err, ats[i])
		}
		if len(res[i].PartIDs) != m.Segments {
			t.Errorf("message %s: %d part ids, want %d", m.ID, len(res[i].PartIDs), m.Segments)
		}
		for _, id := range res[i].PartIDs {
			if seen[id] {
				t.Errorf("part id %s given twice", id)
			}
			seen[id] = true
		}
	}
}

func TestSimReplaysReceiptsAfterRestart(t *testing.T) {
	clk := clock.NewFake(simT0)
	outbox := filepath.Join(t.TempDir(), "outbox.jsonl")
	first, err := NewSim(SimOptions{Clock: clk, Outbox: outbox})
	if err != nil {
		t.Fatal(err)
	}
	a := first.Send(context.Background(), []Message{msg("1-1", "+447700900001", 2), msg("1-2", "+447700900015", 1)})
	if a[0].Err != nil || a[1].Err != nil {
		t.Fatalf("Send: %v, %v", a[0].Err, a[1].Err)
	}
	first.Close() // the crash: its queue is lost

	clk.Advance(time.Minute)
	second, err := NewSim(SimOptions{Clock: clk, Outbox: outbox})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	got := make(chan []Event, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go second.Run(ctx, func(_ context.Context, evs []Event) error { got <- evs; return nil })
	waitTimers(t, clk)
	clk.Advance(DefaultSimDeliveryDelay)
	evs := <-got
	var parts []string
	replies := 0
	for _, e := range evs {
		if e.Kind == Receipt {
			parts = append(parts, e.PartID)
		} else {
			replies++
		}
	}
	want := append(append([]string{}, a[0].PartIDs...), a[1].PartIDs...)
	if fmt.Sprint(parts) != fmt.Sprint(want) || replies != 1 {
		t.Errorf("replayed parts %v and %d replies, want %v and 1", parts, replies, want)
	}
	// Messages handed over more than the replay window ago are not replayed.
	clk.Advance(2 * time.Hour)
	third, err := NewSim(SimOptions{Clock: clk, Outbox: outbox})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if n := len(third.queue); n != 0 {
		t.Errorf("old messages replayed: %d groups", n)
	}
}

func TestSimOutcomes(t *testing.T) {
	tests := []struct {
		to        string
		segments  int
		status    batch.Status
		code      string
		replyText string
	}{
		{"+447700900001", 1, batch.StatusOK, "", ""},
		{"+447700900001", 3, batch.StatusOK, "", ""},
		{"+447700900013", 1, batch.StatusKO, batch.CodeUndelivered, ""},
		{"+447700900013", 2, batch.StatusKO, batch.CodeUndelivered, ""},
		{"+447700900014", 1, batch.StatusNo, SimCodeUnknown, ""},
		{"+447700900015", 1, batch.StatusOK, "", "OK"},
		{"+447700900016", 4, batch.StatusOK, "", "STOP"},
		{"+447700900130", 1, batch.StatusOK, "", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%d", tt.to, tt.segments), func(t *testing.T) {
			h := newSimHarness(t)
			h.run()
			res := h.send(msg("42-3", tt.to, tt.segments))
			if res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			h.waitArmed()
			h.expectNoCall()
			h.clk.Advance(simTestDelay - time.Nanosecond)
			h.expectNoCall()
			h.clk.Advance(time.Nanosecond)
			events := h.nextCall()

			due := simT0.Add(simTestDelay)
			var want []Event
			for _, id := range res[0].PartIDs {
				want = append(want, Event{Kind: Receipt, PartID: id, Status: tt.status, Code: tt.code, At: due})
			}
			if tt.replyText != "" {
				want = append(want, Event{Kind: Reply, From: tt.to, To: "SHOP", Account: "demo", Text: tt.replyText, At: due})
			}
			if !slices.Equal(events, want) {
				t.Fatalf("events %+v\nwant %+v", events, want)
			}
		})
	}
}

func TestSimDeliversDueEventsTogetherInOrder(t *testing.T) {
	h := newSimHarness(t)
	h.run()
	a := h.send(msg("1-1", "+447700900001", 1), msg("1-2", "+447700900002", 1))
	b := h.send(msg("1-3", "+447700900003", 1))
	h.waitArmed()
	h.clk.Advance(simTestDelay / 2)
	c := h.send(msg("2-1", "+447700900004", 1))
	h.waitArmed()
	h.clk.Advance(simTestDelay / 2)

	ids := func(events []Event) []string {
		var out []string
		for _, ev := range events {
			out = append(out, ev.PartID)
		}
		return out
	}
	first := ids(h.nextCall())
	if want := []string{a[0].PartIDs[0], a[1].PartIDs[0], b[0].PartIDs[0]}; !slices.Equal(first, want) {
		t.Fatalf("first delivery %v, want %v", first, want)
	}
	h.waitArmed()
	h.expectNoCall()
	h.clk.Advance(simTestDelay / 2)
	if second, want := ids(h.nextCall()), c[0].PartIDs; !slices.Equal(second, want) {
		t.Fatalf("second delivery %v, want %v", second, want)
	}
}

func TestSimRedeliversAfterHandlerError(t *testing.T) {
	h := newSimHarness(t)
	h.fail.Store(2)
	h.run()
	res := h.send(msg("1-1", "+447700900015", 2))
	h.waitArmed()
	h.clk.Advance(simTestDelay)
	failed := h.nextCall()
	if len(failed) != 3 {
		t.Fatalf("first delivery has %d events, want 3", len(failed))
	}
	for range 2 {
		h.waitArmed()
		h.expectNoCall()
		h.clk.Advance(time.Minute) // beyond any backoff
		if again := h.nextCall(); !slices.Equal(again, failed) {
			t.Fatalf("redelivered %+v\nwant %+v", again, failed)
		}
	}
	if failed[0].PartID != res[0].PartIDs[0] {
		t.Fatalf("receipt for %s, want %s", failed[0].PartID, res[0].PartIDs[0])
	}
	// Stored now: the queue is empty, so Run waits without a timer.
	h.send(msg("1-2", "+447700900001", 1))
	h.waitArmed()
	h.clk.Advance(simTestDelay)
	if next := h.nextCall(); len(next) != 1 || next[0].PartID == failed[0].PartID {
		t.Fatalf("after success got %+v, want only the new receipt", next)
	}
}

func TestSimKeepsEventsSentBeforeRun(t *testing.T) {
	h := newSimHarness(t)
	res := h.send(msg("1-1", "+447700900013", 1))
	h.clk.Advance(time.Hour)
	h.run()
	events := h.nextCall()
	if len(events) != 1 || events[0].PartID != res[0].PartIDs[0] || events[0].Code != batch.CodeUndelivered {
		t.Fatalf("events %+v, want the UNDELIVERED receipt of %s", events, res[0].PartIDs[0])
	}
	if want := simT0.Add(simTestDelay); !events[0].At.Equal(want) {
		t.Errorf("receipt at %v, want %v", events[0].At, want)
	}
}

func TestSimSendRefusals(t *testing.T) {
	tests := []struct {
		name      string
		ctx       func() context.Context
		close     bool
		msgs      []Message
		accepted  []bool // per message
		permanent []bool // per refused message: whether its error is permanent
		lines     int
	}{
		{
			name:      "malformed messages refused, others sent",
			msgs:      []Message{msg("1-1", "", 1), msg("1-2", "+447700900001", 1), msg("1-3", "+447700900002", 0)},
			permanent: []bool{true, false, true},
			accepted:  []bool{false, true, false},
			lines:     1,
		},
		{
			name: "cancelled context",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			msgs:      []Message{msg("1-1", "+447700900001", 1)},
			permanent: []bool{false},
			accepted:  []bool{false},
		},
		{
			name:      "closed",
			close:     true,
			msgs:      []Message{msg("1-1", "+447700900001", 1)},
			permanent: []bool{false},
			accepted:  []bool{false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSimHarness(t)
			if tt.close {
				if err := h.sim.Close(); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			res := h.sim.Send(ctx, tt.msgs)
			for i, r := range res {
				if tt.accepted[i] {
					if r.Err != nil || len(r.PartIDs) != tt.msgs[i].Segments {
						t.Errorf("message %d: %v, %d part ids; want accepted", i, r.Err, len(r.PartIDs))
					}
					continue
				}
				if r.Err == nil || r.PartIDs != nil {
					t.Errorf("message %d accepted, want refused", i)
					continue
				}
				if IsTemporary(r.Err) == tt.permanent[i] {
					t.Errorf("message %d: IsTemporary(%v) = %v", i, r.Err, IsTemporary(r.Err))
				}
			}
			if got := len(h.outboxLines()); got != tt.lines {
				t.Errorf("outbox has %d lines, want %d", got, tt.lines)
			}
		})
	}
}

func TestSimWithoutOutbox(t *testing.T) {
	clk := clock.NewFake(simT0)
	sim, err := NewSim(SimOptions{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	res := sim.Send(context.Background(), []Message{msg("1-1", "+447700900001", 2)})
	if res[0].Err != nil || len(res[0].PartIDs) != 2 {
		t.Fatalf("Send: %v, %d part ids", res[0].Err, len(res[0].PartIDs))
	}
	clk.Advance(DefaultSimDeliveryDelay)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		done <- sim.Run(ctx, func(_ context.Context, events []Event) error {
			got <- len(events)
			cancel()
			return nil
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("%d receipts, want 2", n)
		}
	case <-time.After(simWaitFor):
		t.Fatal("gave up waiting for receipts")
	}
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSimConcurrentSends(t *testing.T) {
	const senders, calls, perCall = 8, 25, 20
	h := newSimHarness(t)
	var wg sync.WaitGroup
	ids := make(chan string, senders*calls*perCall*2)
	for s := range senders {
		wg.Go(func() {
			for c := range calls {
				msgs := make([]Message, perCall)
				for i := range msgs {
					msgs[i] = msg(fmt.Sprintf("%d-%d-%d", s, c, i), fmt.Sprintf("+4477009%05d", 100+i), 1+i%2)
				}
				for i, r := range h.sim.Send(context.Background(), msgs) {
					if r.Err != nil || len(r.PartIDs) != msgs[i].Segments {
						t.Errorf("Send: %v, %d part ids", r.Err, len(r.PartIDs))
					}
					for _, id := range r.PartIDs {
						ids <- id
					}
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	want := make(map[string]bool)
	for id := range ids {
		if want[id] {
			t.Fatalf("part id %s given twice", id)
		}
		want[id] = true
	}
	lines := h.outboxLines()
	if len(lines) != senders*calls*perCall {
		t.Fatalf("outbox has %d lines, want %d", len(lines), senders*calls*perCall)
	}

	h.run()
	h.waitArmed()
	h.clk.Advance(simTestDelay)
	got := make(map[string]bool)
	for len(got) < len(want) {
		for _, ev := range h.nextCall() {
			if !want[ev.PartID] || got[ev.PartID] {
				t.Fatalf("unexpected receipt for %s", ev.PartID)
			}
			got[ev.PartID] = true
		}
	}
}

// BenchmarkSimSend measures Send and Run together: 1,000 messages per Send,
// a short real delivery delay, a no-op handler; it reports parts/s from
// the first Send until Run has delivered every receipt.
func BenchmarkSimSend(b *testing.B) {
	sim, err := NewSim(SimOptions{
		DeliveryDelay: time.Millisecond,
		Outbox:        filepath.Join(b.TempDir(), "sim-outbox.jsonl"),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	msgs := make([]Message, 1000)
	parts := 0
	for i := range msgs {
		msgs[i] = Message{
			ID: fmt.Sprintf("1-%d", i+1), Account: "demo", Batch: 1, Line: i + 1,
			To: fmt.Sprintf("+4477009%05d", i), From: "SHOP",
			Text:     "Your parcel 1Z999AA10123456784 arrives tomorrow between 10:00 and 12:00.",
			Encoding: batch.EncodingGSM, Segments: 1,
		}
		parts++
	}
	var delivered atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sim.Run(ctx, func(_ context.Context, events []Event) error {
			n := 0
			for _, ev := range events {
				if ev.Kind == Receipt {
					n++
				}
			}
			delivered.Add(int64(n))
			return nil
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	b.ResetTimer()
	sent := 0
	for range b.N {
		for _, r := range sim.Send(ctx, msgs) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		sent += parts
	}
	deadline := time.Now().Add(time.Minute)
	for delivered.Load() < int64(sent) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d receipts delivered", delivered.Load(), sent)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "parts/s")
}

// waitTimers waits until Run sleeps on its timer, so advancing the fake
// clock wakes it.
func waitTimers(t *testing.T, clk *clock.Fake) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for clk.Timers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run never armed its timer")
		}
		time.Sleep(time.Millisecond)
	}
}

// A kill -9 during a write(2) can leave a torn last line in the outbox. It
// is cut off at the next start, so the next line is not glued to it and
// every line stays one JSON object.
func TestSimCutsTornOutboxLine(t *testing.T) {
	full := `{"id":"1-1","account":"demo","batch":1,"line":1,"to":"+447700900001","from":"","text":"hi","encoding":"gsm","segments":1,"at":"2026-11-23T10:00:00Z"}` + "\n"
	torn := `{"id":"1-2","account":"demo","batch":1,"line":2,"to":"+4477009`
	long := strings.Repeat(full, 200) // the torn line's start is more than a read back
	for _, tc := range []struct {
		name, before, kept string
	}{
		{"empty", "", ""},
		{"whole lines", full + full, full + full},
		{"torn last line", full + torn, full},
		{"only a torn line", torn, ""},
		{"torn line after many", long + torn, long},
		{"torn line longer than a read", full + strings.Repeat("x", 10000), full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outbox := filepath.Join(t.TempDir(), "outbox.jsonl")
			if err := os.WriteFile(outbox, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
			clk := clock.NewFake(simT0)
			s, err := NewSim(SimOptions{Clock: clk, Outbox: outbox})
			if err != nil {
				t.Fatal(err)
			}
			if r := s.Send(context.Background(), []Message{msg("2-1", "+447700900002", 1)}); r[0].Err != nil {
				t.Fatal(r[0].Err)
			}
			s.Close()
			data, err := os.ReadFile(outbox)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), tc.kept) {
				t.Fatalf("outbox does not start with the whole lines kept:\n%q", data)
			}
			lines := strings.Split(strings.TrimSuffix(string(data[len(tc.kept):]), "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("after the kept lines: %q, want the new line alone", lines)
			}
			var ln map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &ln); err != nil || ln["id"] != "2-1" {
				t.Fatalf("new line %q: %v (id %v)", lines[0], err, ln["id"])
			}
		})
	}
}
