package state

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smsdrop/batch"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "smsdrop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// parsed builds a valid parsed batch of n single-part recipients.
func parsed(n int, sendAt time.Time, scheduled bool) *batch.Batch {
	b := &batch.Batch{SendAt: sendAt, Scheduled: scheduled, Messages: []batch.Message{{Index: 1, Line: 2, Template: "hi"}}}
	for i := range n {
		b.Recipients = append(b.Recipients, batch.Recipient{Line: 3 + i, Message: 1, Input: fmt.Sprint(447700900000 + i),
			Number: fmt.Sprintf("+%d", 447700900000+i), Text: "hi", Encoding: batch.EncodingGSM, Segments: 1, Status: batch.StatusWait})
		b.Segments++
	}
	return b
}

func TestStatusTransitions(t *testing.T) {
	W, On, OK, KO, Rep, No := batch.StatusWait, batch.StatusOn, batch.StatusOK, batch.StatusKO, batch.StatusRep, batch.StatusNo
	tests := []struct {
		from, to batch.Status
		ok       bool
	}{
		{W, On, true}, {W, KO, true}, {W, No, true}, {W, OK, true}, {W, Rep, true},
		{On, OK, true}, {On, KO, true}, {On, No, true}, {On, Rep, true}, {On, W, false},
		{OK, Rep, true}, {OK, On, false}, {OK, KO, false}, {OK, No, false}, {OK, W, false},
		{KO, OK, false}, {KO, Rep, false}, {KO, On, false},
		{Rep, OK, false}, {Rep, On, false},
		{No, OK, true}, {No, KO, true}, {No, Rep, true}, {No, On, false}, {No, W, false},
		{On, On, false},
	}
	for _, tt := range tests {
		if got := StatusTransition(tt.from, tt.to); got != tt.ok {
			t.Errorf("%s → %s = %v, want %v", tt.from, tt.to, got, tt.ok)
		}
	}
}

func TestBatchTransitions(t *testing.T) {
	tests := []struct {
		from, to BatchState
		ok       bool
	}{
		{Scheduled, Sending, true}, {Scheduled, Cancelled, true}, {Sending, Done, true}, {Sending, Cancelled, true},
		{Scheduled, Done, false}, {Done, Sending, false}, {Cancelled, Sending, false}, {Rejected, Sending, false},
		{Duplicate, Sending, false}, {Sending, Scheduled, false},
	}
	for _, tt := range tests {
		if got := BatchTransition(tt.from, tt.to); got != tt.ok {
			t.Errorf("%s → %s = %v, want %v", tt.from, tt.to, got, tt.ok)
		}
	}
}

func TestCreateBatchStatesAndDedupe(t *testing.T) {
	s := openTest(t)
	sum := []byte("0123456789abcdef0123456789abcdef")
	nb := NewBatch{Account: "demo", Name: "a.txt", Sum: sum, Received: t0, Parsed: parsed(3, t0, false),
		DedupeWindow: 24 * time.Hour, Validity: 24 * time.Hour}
	b1, err := s.CreateBatch(nb)
	if err != nil {
		t.Fatal(err)
	}
	if b1.ID != 1 || b1.State != Sending || b1.Folder != "archive" || b1.Count(batch.StatusWait) != 3 {
		t.Fatalf("first batch = %+v", b1)
	}
	if got, _ := s.InboxBatch("demo", "a.txt"); got == nil || got.ID != 1 {
		t.Fatalf("inbox entry before move = %v", got)
	}
	if err := s.MarkMoved(1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.InboxBatch("demo", "a.txt"); got != nil {
		t.Fatalf("inbox entry after move = %v", got)
	}
	nb.Received = t0.Add(time.Hour)
	b2, _ := s.CreateBatch(nb)
	if b2.ID != 2 || b2.State != Duplicate || b2.DuplicateOf != 1 || b2.Folder != "rejected" {
		t.Fatalf("same bytes again = %+v", b2)
	}
	nb.Account = "other"
	if b3, _ := s.CreateBatch(nb); b3.State != Sending {
		t.Errorf("same bytes from another account = %s", b3.State)
	}
	nb.Account = "demo"
	nb.Received = t0.Add(25 * time.Hour)
	if b4, _ := s.CreateBatch(nb); b4.State != Sending {
		t.Errorf("same bytes after the window = %s", b4.State)
	}
	nb.Parsed = parsed(1, t0.Add(48*time.Hour), true)
	nb.Sum = []byte("another-sum-another-sum-another-")
	b5, _ := s.CreateBatch(nb)
	if b5.State != Scheduled || b5.Folder != "scheduled" {
		t.Errorf("future D- = %+v", b5)
	}
	if due, ok := s.NextDue(); !ok || !due.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("NextDue = %v %v", due, ok)
	}
	bad := &batch.Batch{Errors: []batch.Issue{{Line: 2, Msg: "D-: invalid date"}}}
	nb.Parsed, nb.Sum = bad, []byte("bad-sum-bad-sum-bad-sum-bad-sum-")
	b6, _ := s.CreateBatch(nb)
	if b6.State != Rejected || len(b6.Errors) != 1 || b6.Errors[0] != "line 2: D-: invalid date" {
		t.Errorf("invalid file = %+v", b6)
	}
	if got := s.Latest("demo", "a.txt"); got != 6 {
		t.Errorf("Latest = %d, want 6", got)
	}
	if b6.SameNameBefore != 5 {
		t.Errorf("SameNameBefore = %d, want 5 (the batch that last used a.txt)", b6.SameNameBefore)
	}
	nb.Name = "fresh.txt"
	if b7, _ := s.CreateBatch(nb); b7.SameNameBefore != 0 {
		t.Errorf("first use of a name: SameNameBefore = %d, want 0", b7.SameNameBefore)
	}
}

// handOver runs one tick that marks keys as handed over and returns them.
func handOver(t *testing.T, s *Store, now time.Time, keys ...Key) []Key {
	t.Helper()
	res, err := s.Commit(&Tick{Now: now, Handovers: keys})
	if err != nil {
		t.Fatal(err)
	}
	return res.Handed
}

// threeMessages stores a batch of three recipients, lines 3 to 5, and
// returns it and their keys.
func threeMessages(t *testing.T, s *Store) (b *Batch, k1, k2, k3 Key) {
	t.Helper()
	b, err := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("s"), Received: t0,
		Parsed: parsed(3, t0, false), Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return b, Key{b.ID, 3}, Key{b.ID, 4}, Key{b.ID, 5}
}

func TestTickLifecycle(t *testing.T) {
	s := openTest(t)
	b, k1, k2, k3 := threeMessages(t, s)
	if h := handOver(t, s, t0, k1, k2, k3); len(h) != 3 {
		t.Fatalf("handed %v", h)
	}
	// A second hand-over of the same message is refused while in flight.
	if h := handOver(t, s, t0, k1); len(h) != 0 {
		t.Fatalf("in-flight message handed again: %v", h)
	}
	_, err := s.Commit(&Tick{Now: t0.Add(time.Second), Outcomes: []Outcome{
		{Key: k1, PartIDs: []string{"p1"}},
		{Key: k2, Err: "THROTTLED", Temporary: true, NextTry: t0.Add(time.Minute)},
		{Key: k3, Err: "REJECTED:0x0000000B"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = s.Batch(b.ID)
	if b.Count(batch.StatusOn) != 1 || b.Count(batch.StatusWait) != 1 || b.Count(batch.StatusKO) != 1 {
		t.Fatalf("counts = %v", b.Counts)
	}
	if r, _, _ := s.DueRetries(t0.Add(time.Minute), nil, 10, nil); len(r) != 1 || r[0].Line != 4 {
		t.Fatalf("due retries = %v", r)
	}
	if fresh, _, _ := s.FreshMessages(b.ID, 0, 10); len(fresh) != 0 {
		t.Fatalf("fresh after first pass = %d", len(fresh))
	}
	// The receipt arrives; a late "on" cannot take it back.
	res, err := s.Commit(&Tick{Now: t0.Add(2 * time.Second), Receipts: []Receipt{{PartID: "p1", Status: batch.StatusOK}, {PartID: "p1", Status: batch.StatusOn}, {PartID: "nope", Status: batch.StatusOK}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.UnknownReceipts != 1 {
		t.Errorf("unknown receipts = %d", res.UnknownReceipts)
	}
	if len(res.Final) != 0 {
		t.Errorf("Final = %v while a message waits for its retry", res.Final)
	}
	// Retry succeeds, then the reply.
	handOver(t, s, t0.Add(time.Minute), k2)
	if _, err := s.Commit(&Tick{Now: t0.Add(time.Minute), Outcomes: []Outcome{{Key: k2, PartIDs: []string{"p2a", "p2b"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(&Tick{Now: t0.Add(2 * time.Minute), Receipts: []Receipt{{PartID: "p2a", Status: batch.StatusOK}}}); err != nil {
		t.Fatal(err)
	}
	if b, _ = s.Batch(b.ID); b.State != Sending {
		t.Fatalf("batch done with a part still on: %+v", b)
	}
	// Read (and kept) before the opt-out: the reply must not find it stale.
	if opt, _ := s.OptedOut("Demo"); len(opt) != 0 {
		t.Fatalf("opt-out list before any reply = %v", opt)
	}
	res, err = s.Commit(&Tick{Now: t0.Add(3 * time.Minute), Receipts: []Receipt{{PartID: "p2b", Status: batch.StatusOK}},
		Replies: []IncomingReply{{From: "+447700900001", Text: "STOP", At: t0.Add(3 * time.Minute), OptOut: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ReplyAccounts) != 1 || res.ReplyAccounts[0] != "demo" {
		t.Errorf("reply accounts = %v", res.ReplyAccounts)
	}
	if len(res.Final) != 1 || res.Final[0] != b.ID {
		t.Errorf("Final = %v, want the batch its last receipt finished", res.Final)
	}
	b, _ = s.Batch(b.ID)
	if b.State != Done || b.Count(batch.StatusOK) != 1 || b.Count(batch.StatusRep) != 1 || b.Count(batch.StatusKO) != 1 {
		t.Fatalf("final batch = %s %v", b.State, b.Counts)
	}
	msgs, _ := s.Messages(b.ID)
	if m := msgs[1]; m.Status != batch.StatusRep || m.Reply != "STOP" || len(m.History) < 3 {
		t.Errorf("answered message = %+v", m)
	}
	if m := msgs[2]; m.Code != "REJECTED:0x0000000B" {
		t.Errorf("rejected message code = %q", m.Code)
	}
	opt, _ := s.OptedOut("demo")
	if !opt["+447700900001"] {
		t.Errorf("opt-out list = %v", opt)
	}
	// The same reply delivered again is recorded once.
	if _, err := s.Commit(&Tick{Now: t0.Add(4 * time.Minute), Replies: []IncomingReply{{From: "+447700900001", Text: "STOP", At: t0.Add(4 * time.Minute), OptOut: true}}}); err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Replies("demo", t0, t0.Add(time.Hour))
	if len(rs) != 1 || rs[0].MessageID() != "1-4" {
		t.Errorf("replies = %+v", rs)
	}
}

func TestRecoverMarksInFlightUnconfirmed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smsdrop.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("s"), Received: t0, Parsed: parsed(2, t0, false), Validity: time.Hour})
	handOver(t, s, t0, Key{b.ID, 3})
	s.Close() // the crash: no outcome stored

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	changed, err := s.Recover(t0.Add(time.Minute))
	if err != nil || len(changed) != 1 {
		t.Fatalf("recover = %v %v", changed, err)
	}
	msgs, _ := s.Messages(b.ID)
	if msgs[0].Status != batch.StatusNo || msgs[0].Code != batch.CodeUnconfirmed {
		t.Errorf("in-flight message = %s %s", msgs[0].Status, msgs[0].Code)
	}
	if h := handOver(t, s, t0.Add(time.Minute), Key{b.ID, 3}); len(h) != 0 {
		t.Error("an unconfirmed message was handed over again")
	}
	if fresh, _, _ := s.FreshMessages(b.ID, 0, 10); len(fresh) != 1 || fresh[0].Line != 4 {
		t.Errorf("fresh = %v", fresh)
	}
}

func TestCancelAndReceiptTimeout(t *testing.T) {
	s := openTest(t)
	b, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("s"), Received: t0, Parsed: parsed(3, t0, false), Validity: time.Hour})
	handOver(t, s, t0, Key{b.ID, 3})
	if _, err := s.Commit(&Tick{Now: t0, Outcomes: []Outcome{{Key: Key{b.ID, 3}, PartIDs: []string{"p"}}}, Cancels: []uint64{b.ID}}); err != nil {
		t.Fatal(err)
	}
	b, _ = s.Batch(b.ID)
	if b.State != Cancelled || b.Count(batch.StatusKO) != 2 || b.Count(batch.StatusOn) != 1 {
		t.Fatalf("cancelled batch = %s %v", b.State, b.Counts)
	}
	if h := handOver(t, s, t0, Key{b.ID, 4}); len(h) != 0 {
		t.Error("a cancelled message was handed over")
	}
	if _, err := s.Commit(&Tick{Now: t0.Add(73 * time.Hour), ReceiptTimeout: 72 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	msgs, _ := s.Messages(b.ID)
	if msgs[0].Status != batch.StatusNo || msgs[0].Code != batch.CodeReceiptTimeout {
		t.Errorf("message without receipt = %s %s", msgs[0].Status, msgs[0].Code)
	}
	if msgs[1].Code != batch.CodeCancelled {
		t.Errorf("cancelled code = %s", msgs[1].Code)
	}
}

func TestPromoteDue(t *testing.T) {
	s := openTest(t)
	b, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("s"), Received: t0, Parsed: parsed(1, t0.Add(time.Hour), true), Validity: time.Hour})
	if p, _ := s.PromoteDue(t0.Add(59 * time.Minute)); len(p) != 0 {
		t.Fatalf("promoted early: %v", p)
	}
	p, _ := s.PromoteDue(t0.Add(time.Hour))
	if len(p) != 1 || p[0].ID != b.ID || p[0].State != Sending {
		t.Fatalf("promoted = %v", p)
	}
	if a, _ := s.ActiveBatches(); len(a) != 1 {
		t.Errorf("active = %v", a)
	}
}

// freshIDs lists FreshBatches' ids, read two at a time as the dispatcher
// pages through them.
func freshIDs(t *testing.T, s *Store) []uint64 {
	t.Helper()
	var ids []uint64
	for after := uint64(0); ; {
		page, err := s.FreshBatches("demo", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page {
			ids = append(ids, b.ID)
			after = b.ID
		}
		if len(page) < 2 {
			return ids
		}
	}
}

func TestFreshBatches(t *testing.T) {
	s := openTest(t)
	mk := func(name string, n int, at time.Time, scheduled bool) *Batch {
		b, err := s.CreateBatch(NewBatch{Account: "demo", Name: name, Sum: []byte(name), Received: t0, Parsed: parsed(n, at, scheduled), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := mk("a.txt", 2, t0, false)
	b := mk("b.txt", 2, t0, false)
	c := mk("c.txt", 1, t0.Add(time.Hour), true)
	d := mk("d.txt", 1, t0, false)
	e := mk("e.txt", 1, t0, false)
	if got, want := fmt.Sprint(freshIDs(t, s)), fmt.Sprint([]uint64{a.ID, b.ID, d.ID, e.ID}); got != want {
		t.Fatalf("fresh after create = %s, want %s (scheduled batches are not sending yet)", got, want)
	}
	// a's first pass is over; b is cancelled; c starts sending.
	if _, err := s.Commit(&Tick{Now: t0, Exhausted: []BatchRef{{ID: a.ID, Account: "demo"}}, Cancels: []uint64{b.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PromoteDue(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(freshIDs(t, s)), fmt.Sprint([]uint64{c.ID, d.ID, e.ID}); got != want {
		t.Fatalf("fresh = %s, want %s", got, want)
	}
	// An exhausted batch stays active (it waits for receipts)...
	if act, _ := s.ActiveBatches(); len(act) != 4 {
		t.Fatalf("active = %d batches, want 4", len(act))
	}
	// ...and a batch that reaches done leaves both.
	m, err := s.Messages(d.ID)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Batch: d.ID, Line: m[0].Line}
	if _, err := s.Commit(&Tick{Now: t0, Handovers: []Key{k}, Cursors: map[uint64]int{d.ID: k.Line}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(&Tick{Now: t0, Outcomes: []Outcome{{Key: k, Err: "refused"}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Batch(d.ID); got.State != Done || got.Cursor != k.Line {
		t.Fatalf("d = %s, cursor %d; want done, cursor %d", got.State, got.Cursor, k.Line)
	}
	if got, want := fmt.Sprint(freshIDs(t, s)), fmt.Sprint([]uint64{c.ID, e.ID}); got != want {
		t.Fatalf("fresh = %s, want %s", got, want)
	}
}

// A store written before the fresh bucket existed gets one holding every
// sending batch when it is opened; so does one an older smsdrop added a
// sending batch to without it.
func TestFreshBucketAddedToOldStore(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(tx *bolt.Tx, ids []uint64) error
	}{
		{"no fresh bucket", func(tx *bolt.Tx, _ []uint64) error { return tx.DeleteBucket(bFresh) }},
		{"a sending batch missing from it", func(tx *bolt.Tx, ids []uint64) error { return tx.Bucket(bFresh).Delete(freshKey("demo", ids[1])) }},
	} {
		t.Run(tt.name, func(t *testing.T) { testFreshMended(t, tt.damage) })
	}
}

func testFreshMended(t *testing.T, damage func(tx *bolt.Tx, ids []uint64) error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "smsdrop.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i, name := range []string{"a.txt", "b.txt", "c.txt"} {
		b, err := s.CreateBatch(NewBatch{Account: "demo", Name: name, Sum: []byte(name), Received: t0, Parsed: parsed(1, t0.Add(time.Duration(i-1)*time.Hour), i == 2), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return damage(tx, ids) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := fmt.Sprint(freshIDs(t, s)), fmt.Sprint(ids[:2]); got != want {
		t.Fatalf("fresh = %s, want the two sending batches %s", got, want)
	}
}

// BenchmarkOptedOut reads an account's list of 100,000 opt-outs as the
// intake does for each file: from the store after an opt-out was added,
// from the cache otherwise.
func BenchmarkOptedOut(b *testing.B) {
	s := openTest(b)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range 100000 {
			if err := tx.Bucket(bOptout).Put(acctKey("demo", fmt.Sprintf("+4477009%05d", i)), []byte("2026-11-23T10:00:00Z")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		changed bool
	}{{"after a change", true}, {"cached", false}} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if tt.changed {
					s.optouts.changed()
				}
				if set, err := s.OptedOut("demo"); err != nil || len(set) != 100000 {
					b.Fatalf("%d numbers, %v", len(set), err)
				}
			}
		})
	}
}

// FreshAccounts lists the accounts with fresh batches once each, in lower
// case, and FreshBatches reads one account's, also after a reopened store
// rebuilt them.
func TestFreshAccounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smsdrop.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var slow []uint64
	for i, acct := range []string{"Slow", "fast", "SLOW", "other", "slow2"} {
		b, err := s.CreateBatch(NewBatch{Account: acct, Name: fmt.Sprint(i, ".txt"), Sum: []byte(fmt.Sprint(i)), Received: t0, Parsed: parsed(1, t0, false), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if strings.EqualFold(acct, "slow") {
			slow = append(slow, b.ID)
		}
	}
	check := func(when string) {
		t.Helper()
		accts, err := s.FreshAccounts()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"fast", "other", "slow", "slow2"}; fmt.Sprint(accts) != fmt.Sprint(want) {
			t.Fatalf("%s: fresh accounts = %q, want %q", when, accts, want)
		}
		got, err := s.FreshBatches("SLOW", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for _, b := range got {
			ids = append(ids, b.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(slow) {
			t.Fatalf("%s: the slow account's fresh batches = %v, want %v", when, ids, slow)
		}
	}
	check("new store")
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check("reopened")
}

// DueRetries pages through the due retries in time order, and passes over
// those of the accounts skip names (not entries of older stores, which do
// not record the account).
func TestDueRetriesPages(t *testing.T) {
	s := openTest(t)
	var keys []Key
	for i, acct := range []string{"Slow", "fast"} {
		b, err := s.CreateBatch(NewBatch{Account: acct, Name: acct + ".txt", Sum: []byte(acct), Received: t0, Parsed: parsed(2-i, t0, false), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		for line := 3; line < 5-i; line++ {
			keys = append(keys, Key{Batch: b.ID, Line: line})
		}
	}
	handOver(t, s, t0, keys...)
	var outs []Outcome
	for _, k := range keys {
		outs = append(outs, Outcome{Key: k, Err: "THROTTLED", Temporary: true, NextTry: t0.Add(time.Minute)})
	}
	if _, err := s.Commit(&Tick{Now: t0, Outcomes: outs}); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	page := func(after []byte, n int, skip func(string) bool) ([]Key, []byte) {
		t.Helper()
		ms, last, err := s.DueRetries(now, after, n, skip)
		if err != nil {
			t.Fatal(err)
		}
		var got []Key
		for _, m := range ms {
			got = append(got, Key{Batch: m.Batch, Line: m.Line})
		}
		return got, last
	}
	if got, _ := page(nil, 10, nil); fmt.Sprint(got) != fmt.Sprint(keys) {
		t.Fatalf("all due = %v, want %v", got, keys)
	}
	var after []byte
	for i, want := range keys {
		got, last := page(after, 1, nil)
		if len(got) != 1 || got[0] != want {
			t.Fatalf("page %d = %v, want %v", i, got, want)
		}
		after = last
	}
	if got, _ := page(after, 1, nil); len(got) != 0 {
		t.Fatalf("past the last page: %v", got)
	}
	skipSlow := func(a string) bool { return a == "slow" }
	if got, _ := page(nil, 10, skipSlow); fmt.Sprint(got) != fmt.Sprint(keys[2:]) {
		t.Fatalf("skipping slow = %v, want %v", got, keys[2:])
	}
	// An entry of an older store has no account: it is returned.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bRetry).Put(timeKey(t0.Add(time.Minute), keys[0].bytes()), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := page(nil, 10, skipSlow); fmt.Sprint(got) != fmt.Sprint([]Key{keys[0], keys[2]}) {
		t.Fatalf("skipping slow with an old entry = %v", got)
	}
}

// A tick turns at most receiptSweepMax messages to "no" for want of a
// receipt; the next ticks take the rest.
func TestReceiptTimeoutInChunks(t *testing.T) {
	s := openTest(t)
	n := receiptSweepMax + 500
	b, err := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("s"), Received: t0, Parsed: parsed(n, t0, false), Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var keys []Key
	var outs []Outcome
	for i := range n {
		k := Key{b.ID, 3 + i}
		keys = append(keys, k)
		outs = append(outs, Outcome{Key: k, PartIDs: []string{fmt.Sprint("p", i)}})
	}
	handOver(t, s, t0, keys...)
	if _, err := s.Commit(&Tick{Now: t0, Outcomes: outs}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{receiptSweepMax, n} {
		if _, err := s.Commit(&Tick{Now: t0.Add(73 * time.Hour), ReceiptTimeout: 72 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Batch(b.ID)
		if got.Count(batch.StatusNo) != want {
			t.Fatalf("after tick %d: %d no, want %d", i+1, got.Count(batch.StatusNo), want)
		}
	}
	if _, ok := s.NextReceiptCheck(); ok {
		t.Error("receipt checks left after every message timed out")
	}
}

// The results writer records a batch's final files as on disk only at the
// revision it rendered: a change committed between its render and that
// record (a reply) is not in the files, so the record is refused and
// start-up renders them again. A change after the record clears it.
func TestMarkResultsFinalAtTheRenderedRevision(t *testing.T) {
	s := openTest(t)
	b, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("s"), Received: t0, Parsed: parsed(1, t0, false), Validity: time.Hour})
	if _, err := s.Commit(&Tick{Now: t0, Cancels: []uint64{b.ID}}); err != nil {
		t.Fatal(err)
	}
	final := func() (bool, uint64) {
		t.Helper()
		got, err := s.Batch(b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.ResultsFinal, got.ResultsRev
	}
	_, rendered := final()
	// A change commits after the render.
	if _, err := s.Commit(&Tick{Now: t0, Cancels: []uint64{b.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkResultsFinal(Rendered{ID: b.ID, Rev: rendered}); err != nil {
		t.Fatal(err)
	}
	if ok, rev := final(); ok || rev == rendered {
		t.Fatalf("recorded as on disk (rev %d) although the batch changed since rev %d", rev, rendered)
	}
	_, rendered = final()
	if err := s.MarkResultsFinal(Rendered{ID: b.ID, Rev: rendered}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := final(); !ok {
		t.Fatal("not recorded at the rendered revision")
	}
	if _, err := s.Commit(&Tick{Now: t0, Cancels: []uint64{b.ID}}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := final(); ok {
		t.Fatal("a change after the record left it")
	}
}

// Outcomes a provider can give that are not plain successes or failures.
func TestUnusualOutcomes(t *testing.T) {
	tests := []struct {
		name   string
		out    Outcome // Key set by the test
		status batch.Status
		code   string
		after  batch.Status // after receipt_timeout
	}{
		// An SMSC that answers submit_sm with an empty message_id: the
		// commit failed ("key required") and stopped all sending.
		{"accepted without a part id", Outcome{PartIDs: []string{""}}, batch.StatusOn, "", batch.StatusNo},
		// Written, never answered: maybe handed over, like a hand-over in
		// flight at a crash.
		{"unconfirmed", Outcome{Err: batch.CodeUnconfirmed}, batch.StatusNo, batch.CodeUnconfirmed, batch.StatusNo},
		{"rejected", Outcome{Err: batch.CodeRejected}, batch.StatusKO, batch.CodeRejected, batch.StatusKO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t)
			b, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("s"), Received: t0, Parsed: parsed(1, t0, false), Validity: time.Hour})
			k := Key{b.ID, 3}
			handOver(t, s, t0, k)
			tt.out.Key = k
			if _, err := s.Commit(&Tick{Now: t0, Outcomes: []Outcome{tt.out}}); err != nil {
				t.Fatal(err)
			}
			msgs, _ := s.Messages(b.ID)
			if msgs[0].Status != tt.status || msgs[0].Code != tt.code {
				t.Fatalf("message %s %q, want %s %q", msgs[0].Status, msgs[0].Code, tt.status, tt.code)
			}
			later := t0.Add(time.Hour)
			if _, err := s.Commit(&Tick{Now: later, ReceiptTimeout: time.Minute}); err != nil {
				t.Fatal(err)
			}
			msgs, _ = s.Messages(b.ID)
			got, _ := s.Batch(b.ID)
			if msgs[0].Status != tt.after || got.State != Done {
				t.Fatalf("after the receipt timeout: message %s, batch %s; want %s, done", msgs[0].Status, got.State, tt.after)
			}
		})
	}
}

// AwaitedPartIDs lists the parts still waiting for their receipt, the most
// recently handed last, from the newest messages until it has max.
func TestAwaitedPartIDs(t *testing.T) {
	s := openTest(t)
	_, k1, k2, k3 := threeMessages(t, s)
	for i, o := range []Outcome{
		{Key: k1, PartIDs: []string{"p1"}},
		{Key: k2, PartIDs: []string{"p2a", "p2b"}},
		{Key: k3, PartIDs: []string{"p3"}},
	} {
		at := t0.Add(time.Duration(i) * time.Second)
		handOver(t, s, at, o.Key)
		if _, err := s.Commit(&Tick{Now: at, Outcomes: []Outcome{o}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Commit(&Tick{Now: t0.Add(time.Minute), Receipts: []Receipt{{PartID: "p2a", Status: batch.StatusOK}, {PartID: "p3", Status: batch.StatusOK}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{10, []string{"p1", "p2b"}},
		{2, []string{"p1", "p2b"}},
		{1, []string{"p2b"}}, // the newest message waiting

	} {
		got, err := s.AwaitedPartIDs(tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("AwaitedPartIDs(%d) = %v, want %v", tc.max, got, tc.want)
		}
	}
}
