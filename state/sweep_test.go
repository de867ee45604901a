package state

import (
	"fmt"
	"testing"
	"time"

	"smsdrop/batch"
)

func TestSweepRemovesOldFinishedBatches(t *testing.T) {
	s := openTest(t)
	old, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "a.txt", Sum: []byte("a"), Received: t0, Parsed: parsed(2, t0, false), Validity: time.Hour})
	handOver(t, s, t0, Key{old.ID, 3})
	if _, err := s.Commit(&Tick{Now: t0, Outcomes: []Outcome{{Key: Key{old.ID, 3}, PartIDs: []string{"p"}}}, Cancels: []uint64{old.ID}}); err != nil {
		t.Fatal(err)
	}
	running, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "b.txt", Sum: []byte("b"), Received: t0, Parsed: parsed(2, t0.Add(100*24*time.Hour), true), Validity: time.Hour})
	recent, _ := s.CreateBatch(NewBatch{Account: "demo", Name: "c.txt", Sum: []byte("c"), Received: t0.Add(40 * 24 * time.Hour), Parsed: &batch.Batch{Errors: []batch.Issue{{Msg: "x"}}}})
	if _, err := s.Commit(&Tick{Now: t0, Replies: []IncomingReply{{From: "+447700900000", Text: "hi", At: t0}}}); err != nil {
		t.Fatal(err)
	}

	removed, err := s.Sweep(t0.Add(30 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].ID != old.ID {
		t.Fatalf("removed %v, want only batch %d", removed, old.ID)
	}
	if _, err := s.Batch(old.ID); err == nil {
		t.Error("swept batch still readable")
	}
	if msgs, _ := s.Messages(old.ID); len(msgs) != 0 {
		t.Errorf("%d messages of a swept batch left", len(msgs))
	}
	for _, id := range []uint64{running.ID, recent.ID} {
		if _, err := s.Batch(id); err != nil {
			t.Errorf("batch %d swept: %v", id, err)
		}
	}
	if rs, _ := s.Replies("demo", t0.Add(-time.Hour), t0.Add(time.Hour)); len(rs) != 0 {
		t.Errorf("old replies left: %v", rs)
	}
	// A receipt for a swept part is unknown, not an error.
	if res, err := s.Commit(&Tick{Now: t0, Receipts: []Receipt{{PartID: "p", Status: batch.StatusOK}}}); err != nil || res.UnknownReceipts != 1 {
		t.Errorf("receipt after sweep: %v %v", res, err)
	}
}

// A week of traffic with a two-day retention: the file stops growing.
func TestSweepKeepsFileSizeFlat(t *testing.T) {
	s := openTest(t)
	day := 24 * time.Hour
	var sizes []int64
	for d := range 7 {
		now := t0.Add(time.Duration(d) * day)
		for i := range 6 {
			b, err := s.CreateBatch(NewBatch{Account: "demo", Name: fmt.Sprintf("f%d.txt", i), Sum: []byte(fmt.Sprint(d, i)),
				Received: now, Parsed: parsed(200, now, false), Validity: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Commit(&Tick{Now: now, Cancels: []uint64{b.ID}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Sweep(now.Add(-2 * day)); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, s.Size())
	}
	t.Logf("store size by day: %v", sizes)
	if sizes[6] > sizes[3]*5/4 {
		t.Errorf("store keeps growing under retention: sizes by day %v", sizes)
	}
}

// Batches kept by a sweep (still scheduled, or finished after the cutoff)
// at the head of the received-time index must not stop it: a full chunk of
// them used to end the sweep before the old finished batches behind them.
func TestSweepPassesKeptBatches(t *testing.T) {
	s := openTest(t)
	for i := range sweepChunk + 10 {
		// Received first, scheduled 100 days ahead: kept.
		if _, err := s.CreateBatch(NewBatch{Account: "demo", Name: fmt.Sprintf("s%d.txt", i), Sum: []byte(fmt.Sprint("s", i)),
			Received: t0, Parsed: parsed(1, t0.Add(100*24*time.Hour), true), Validity: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	old, err := s.CreateBatch(NewBatch{Account: "demo", Name: "old.txt", Sum: []byte("old"), Received: t0.Add(time.Minute),
		Parsed: &batch.Batch{Errors: []batch.Issue{{Msg: "x"}}}})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := s.Sweep(t0.Add(30 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].ID != old.ID {
		t.Fatalf("removed %d batches, want only the rejected batch %d behind %d kept ones", len(removed), old.ID, sweepChunk+10)
	}
}
