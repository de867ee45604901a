package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"smsdrop/batch"
)

// Outcome is what the provider answered to one hand-over.
type Outcome struct {
	Key
	PartIDs []string // accepted: one provider id per part
	// Err is set when the provider refused the message.
	Err string
	// Temporary asks for a retry at NextTry (until the batch's deadline).
	Temporary bool
	NextTry   time.Time
}

// Receipt is a delivery receipt for one part.
type Receipt struct {
	PartID string
	Status batch.Status
	Code   string
	At     time.Time
}

// IncomingReply is a mobile-originated message to match and store.
type IncomingReply struct {
	From    string
	Account string // "" when the provider does not know
	Text    string
	At      time.Time
	OptOut  bool // the text is an opt-out keyword
}

// Tick is everything the dispatcher applies in one transaction.
type Tick struct {
	Now       time.Time
	Outcomes  []Outcome
	Cancels   []uint64
	Handovers []Key
	Cursors   map[uint64]int // batch → last line picked by the first pass
	// Exhausted are sending batches whose first pass reached their last
	// line: FreshBatches no longer returns them.
	Exhausted      []BatchRef
	Receipts       []Receipt
	Replies        []IncomingReply
	Expired        []Key         // wait messages past their batch's deadline
	ReceiptTimeout time.Duration // parts on longer than this become no; 0 = never
}

// TickResult says what a Commit did.
type TickResult struct {
	// Handed are the hand-overs accepted: only these may be sent.
	Handed []Key
	// Changed are the batches whose report or CSV changed.
	Changed []uint64
	// ReplyAccounts are the accounts that got a reply.
	ReplyAccounts []string
	// UnknownReceipts counts receipts for parts the store does not know.
	UnknownReceipts int
	// Unmatched counts replies no message could be found for.
	Unmatched int
	// Statuses counts the status changes made, by the status reached.
	Statuses map[batch.Status]int
	// Final are the batches of Changed that are in a final state now.
	Final []uint64
	// Wrote is true when the tick wrote a transaction (it was not empty).
	Wrote bool
}

// txWriter caches the records one transaction touches and writes each once.
type txWriter struct {
	tx      *bolt.Tx
	now     time.Time
	batches map[uint64]*Batch
	msgs    map[Key]*Message
	reached map[batch.Status]int
}

func newTxWriter(tx *bolt.Tx, now time.Time) *txWriter {
	return &txWriter{tx: tx, now: now, batches: map[uint64]*Batch{}, msgs: map[Key]*Message{}, reached: map[batch.Status]int{}}
}

func (w *txWriter) batch(id uint64) (*Batch, error) {
	if b, ok := w.batches[id]; ok {
		return b, nil
	}
	b, err := getBatch(w.tx, id)
	if err != nil {
		return nil, err
	}
	w.batches[id] = b
	return b, nil
}

func (w *txWriter) msg(k Key) (*Message, error) {
	if m, ok := w.msgs[k]; ok {
		return m, nil
	}
	m, err := getMsg(w.tx, k)
	if err != nil {
		return nil, err
	}
	if _, err := w.batch(k.Batch); err != nil {
		return nil, err
	}
	w.msgs[k] = m
	return m, nil
}

func pendingKey(m *Message) []byte {
	return timeKey(m.Handed, Key{m.Batch, m.Line}.bytes())
}

// setStatus applies the status state machine; an update that would go
// backwards is ignored.
func (w *txWriter) setStatus(m *Message, st batch.Status, code string) error {
	if !StatusTransition(m.Status, st) {
		return nil
	}
	b, err := w.batch(m.Batch)
	if err != nil {
		return err
	}
	b.addCount(m.Status, -1)
	b.addCount(st, 1)
	if m.Status == batch.StatusOn && st != batch.StatusOn && !m.Handed.IsZero() {
		if err := w.tx.Bucket(bPending).Delete(pendingKey(m)); err != nil {
			return err
		}
	}
	m.Status, m.Code, m.Updated = st, code, w.now
	w.reached[st]++
	m.History = append(m.History, Change{At: w.now, Status: st, Code: code})
	return nil
}

func (w *txWriter) flush() error {
	for _, m := range w.msgs {
		if err := putMsg(w.tx, m); err != nil {
			return err
		}
	}
	for _, b := range w.batches {
		if b.State == Sending && b.Count(batch.StatusWait) == 0 && b.Count(batch.StatusOn) == 0 {
			b.State = Done
			b.Finished = w.now
			if err := deactivate(w.tx, b); err != nil {
				return err
			}
		}
		// What the result files show changed: start-up renders them again
		// after a crash until the writer records this revision as on disk.
		b.ResultsRev++
		b.ResultsFinal = false
		if err := putBatch(w.tx, b); err != nil {
			return err
		}
	}
	return nil
}

func partRef(k Key, part int) []byte {
	b := make([]byte, 14)
	copy(b, k.bytes())
	binary.BigEndian.PutUint16(b[12:], uint16(part))
	return b
}

func (t *Tick) empty() bool {
	return len(t.Outcomes) == 0 && len(t.Cancels) == 0 && len(t.Handovers) == 0 && len(t.Receipts) == 0 &&
		len(t.Replies) == 0 && len(t.Expired) == 0 && len(t.Exhausted) == 0 && len(t.Cursors) == 0
}

// Commit applies a tick in one transaction, which it may share with other
// updates (group.go). An empty tick costs no write.
func (s *Store) Commit(t *Tick) (TickResult, error) {
	var res TickResult
	if t.empty() {
		next, ok := s.NextReceiptCheck()
		if t.ReceiptTimeout <= 0 || !ok || next.After(t.Now.Add(-t.ReceiptTimeout)) {
			return res, nil
		}
	}
	err := s.group.update(func(tx *bolt.Tx) error {
		res = TickResult{}
		w := newTxWriter(tx, t.Now)
		if err := w.applyOutcomes(t.Outcomes); err != nil {
			return err
		}
		for _, id := range t.Cancels {
			if err := w.cancel(id); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		handed, err := w.handOver(t.Handovers, t.Cursors)
		if err != nil {
			return err
		}
		for _, r := range t.Exhausted {
			if err := tx.Bucket(bFresh).Delete(freshKey(r.Account, r.ID)); err != nil {
				return err
			}
		}
		res.Handed = handed
		unknown, err := w.applyReceipts(t.Receipts)
		if err != nil {
			return err
		}
		res.UnknownReceipts = unknown
		accts, unmatched, err := w.applyReplies(t.Replies)
		if err != nil {
			return err
		}
		res.ReplyAccounts, res.Unmatched = accts, unmatched
		for _, k := range t.Expired {
			m, err := w.msg(k)
			if err != nil {
				continue
			}
			if m.Status == batch.StatusWait {
				if !m.NextTry.IsZero() {
					if err := w.tx.Bucket(bRetry).Delete(timeKey(m.NextTry, k.bytes())); err != nil {
						return err
					}
					m.NextTry = time.Time{}
				}
				if err := w.setStatus(m, batch.StatusKO, batch.CodeExpired); err != nil {
					return err
				}
			}
		}
		if t.ReceiptTimeout > 0 {
			if err := w.sweepReceipts(t.Now.Add(-t.ReceiptTimeout)); err != nil {
				return err
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		for id, b := range w.batches {
			res.Changed = append(res.Changed, id)
			if b.State.Final() {
				res.Final = append(res.Final, id)
			}
		}
		res.Statuses = w.reached
		res.Wrote = true
		sort.Slice(res.Changed, func(i, j int) bool { return res.Changed[i] < res.Changed[j] })
		return nil
	})
	if err != nil {
		return TickResult{}, fmt.Errorf("commit tick: %w", err)
	}
	for _, r := range t.Replies {
		if r.OptOut {
			s.optouts.changed() // after the commit: see optoutCache
			break
		}
	}
	return res, nil
}

func (w *txWriter) applyOutcomes(outs []Outcome) error {
	hb := w.tx.Bucket(bHandover)
	for _, o := range outs {
		if err := hb.Delete(o.Key.bytes()); err != nil {
			return err
		}
		m, err := w.msg(o.Key)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return err
		}
		if m.Status != batch.StatusWait {
			continue
		}
		m.Attempts++
		b := w.batches[m.Batch]
		switch {
		case o.Err == "":
			m.Parts = make([]Part, len(o.PartIDs))
			for i, id := range o.PartIDs {
				m.Parts[i] = Part{ID: id, Status: batch.StatusOn}
				if id == "" {
					// Accepted without an id (an SMSC answering an empty
					// message_id): no receipt can name it, so it waits for
					// receipt_timeout. bbolt refuses an empty key, and that
					// failed commit stopped all sending.
					continue
				}
				if err := w.tx.Bucket(bProvider).Put([]byte(id), partRef(o.Key, i)); err != nil {
					return err
				}
			}
			if err := w.setStatus(m, batch.StatusOn, ""); err != nil {
				return err
			}
			m.Handed = w.now
			if err := w.tx.Bucket(bPending).Put(pendingKey(m), nil); err != nil {
				return err
			}
			ref := o.Key.bytes()
			if err := w.tx.Bucket(bLastMsg).Put(acctKey(b.Account, m.Number), ref); err != nil {
				return err
			}
			if err := w.tx.Bucket(bLastMsg).Put(acctKey("", m.Number), ref); err != nil {
				return err
			}
		case o.Temporary && !o.NextTry.After(b.Deadline) && b.State == Sending:
			m.NextTry = o.NextTry
			m.Code = o.Err
			if err := w.tx.Bucket(bRetry).Put(timeKey(o.NextTry, o.Key.bytes()), []byte(strings.ToLower(b.Account))); err != nil {
				return err
			}
		case o.Temporary && b.State == Cancelled:
			if err := w.setStatus(m, batch.StatusKO, batch.CodeCancelled); err != nil {
				return err
			}
		case o.Temporary:
			if err := w.setStatus(m, batch.StatusKO, batch.CodeExpired); err != nil {
				return err
			}
		default:
			// A submit that may or may not have reached the provider (its
			// response never came) is, like a hand-over in flight at a
			// crash, of unknown outcome: no, not ko, which would invite a
			// resend of a message that may have been delivered.
			status := batch.StatusKO
			if o.Err == batch.CodeUnconfirmed {
				status = batch.StatusNo
			}
			if err := w.setStatus(m, status, o.Err); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *txWriter) handOver(keys []Key, cursors map[uint64]int) ([]Key, error) {
	for id, line := range cursors {
		b, err := w.batch(id)
		if err != nil {
			continue
		}
		if line > b.Cursor {
			b.Cursor = line
		}
	}
	hb := w.tx.Bucket(bHandover)
	var out []Key
	for _, k := range keys {
		m, err := w.msg(k)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		if m.Status != batch.StatusWait || w.batches[k.Batch].State != Sending || hb.Get(k.bytes()) != nil {
			continue
		}
		if !m.NextTry.IsZero() {
			if err := w.tx.Bucket(bRetry).Delete(timeKey(m.NextTry, k.bytes())); err != nil {
				return nil, err
			}
			m.NextTry = time.Time{}
		}
		if err := hb.Put(k.bytes(), nil); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// messageStatus derives a message's status from its parts: ko when any part
// failed, ok when all were delivered, no when all are final and some unknown.
func messageStatus(parts []Part) (batch.Status, string) {
	allFinal, noCode, anyNo := true, "", false
	for _, p := range parts {
		switch p.Status {
		case batch.StatusKO:
			return batch.StatusKO, p.Code
		case batch.StatusNo:
			if !anyNo {
				anyNo, noCode = true, p.Code
			}
		case batch.StatusOK, batch.StatusRep:
		default:
			allFinal = false
		}
	}
	switch {
	case !allFinal:
		return batch.StatusOn, ""
	case anyNo:
		return batch.StatusNo, noCode
	}
	return batch.StatusOK, ""
}

func (w *txWriter) applyPart(m *Message, part int, st batch.Status, code string) error {
	if part >= len(m.Parts) {
		return nil
	}
	p := &m.Parts[part]
	if !StatusTransition(p.Status, st) {
		return nil
	}
	p.Status, p.Code = st, code
	ms, mc := messageStatus(m.Parts)
	if m.Status == batch.StatusRep {
		return nil
	}
	return w.setStatus(m, ms, mc)
}

func (w *txWriter) applyReceipts(rs []Receipt) (int, error) {
	unknown := 0
	pb := w.tx.Bucket(bProvider)
	for _, r := range rs {
		ref := pb.Get([]byte(r.PartID))
		if ref == nil {
			unknown++
			continue
		}
		k := keyFrom(ref)
		part := int(binary.BigEndian.Uint16(ref[12:]))
		m, err := w.msg(k)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				unknown++
				continue
			}
			return 0, err
		}
		if err := w.applyPart(m, part, r.Status, r.Code); err != nil {
			return 0, err
		}
	}
	return unknown, nil
}

func (w *txWriter) applyReplies(rs []IncomingReply) ([]string, int, error) {
	accts := map[string]bool{}
	unmatched := 0
	meta := w.tx.Bucket(bMeta)
	for _, r := range rs {
		rec := Reply{Received: r.At, From: r.From, Account: r.Account, Text: r.Text, OptOut: r.OptOut}
		ref := w.tx.Bucket(bLastMsg).Get(acctKey(r.Account, r.From))
		if ref != nil {
			k := keyFrom(ref)
			if m, err := w.msg(k); err == nil {
				if m.Status == batch.StatusRep && m.Reply == r.Text {
					// The same reply delivered again (a provider retrying an
					// MO whose acknowledgement was lost, a replay after a
					// restart): already recorded.
					continue
				}
				b := w.batches[k.Batch]
				rec.Account, rec.Batch, rec.Line = b.Account, k.Batch, k.Line
				m.Reply = r.Text
				if m.Status != batch.StatusKO {
					if err := w.setStatus(m, batch.StatusRep, ""); err != nil {
						return nil, 0, err
					}
				}
			}
		}
		if rec.Batch == 0 {
			unmatched++
		}
		if rec.Account == "" {
			continue // nobody to tell: counted as unmatched
		}
		if r.OptOut {
			if err := w.tx.Bucket(bOptout).Put(acctKey(rec.Account, r.From), []byte(r.At.UTC().Format(time.RFC3339))); err != nil {
				return nil, 0, err
			}
		}
		seq := uint64(0)
		if v := meta.Get([]byte("reply_seq")); v != nil {
			seq = binary.BigEndian.Uint64(v)
		}
		seq++
		if err := meta.Put([]byte("reply_seq"), u64(seq)); err != nil {
			return nil, 0, err
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return nil, 0, err
		}
		if err := w.tx.Bucket(bReplies).Put(timeKey(r.At, u64(seq)), v); err != nil {
			return nil, 0, err
		}
		accts[rec.Account] = true
	}
	out := make([]string, 0, len(accts))
	for a := range accts {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, unmatched, nil
}

func (w *txWriter) cancel(id uint64) error {
	b, err := w.batch(id)
	if err != nil {
		return err
	}
	if b.State != Scheduled && b.State != Sending {
		return nil
	}
	if b.State == Scheduled {
		if err := w.tx.Bucket(bDue).Delete(timeKey(b.SendAt, u64(id))); err != nil {
			return err
		}
	}
	if err := deactivate(w.tx, b); err != nil {
		return err
	}
	b.State = Cancelled
	b.Finished = w.now
	hb := w.tx.Bucket(bHandover)
	c := w.tx.Bucket(bMsgs).Cursor()
	prefix := u64(id)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		key := keyFrom(k)
		if hb.Get(k) != nil {
			continue // in flight: its outcome decides
		}
		m, ok := w.msgs[key]
		if !ok {
			if msgStatus(v) != batch.StatusWait {
				continue
			}
			m, err = decodeMsg(key, v)
			if err != nil {
				return err
			}
			w.msgs[key] = m
		}
		if m.Status != batch.StatusWait {
			continue
		}
		if !m.NextTry.IsZero() {
			if err := w.tx.Bucket(bRetry).Delete(timeKey(m.NextTry, k)); err != nil {
				return err
			}
			m.NextTry = time.Time{}
		}
		if err := w.setStatus(m, batch.StatusKO, batch.CodeCancelled); err != nil {
			return err
		}
	}
	return nil
}

// receiptSweepMax bounds the messages one tick turns to "no" for want of a
// receipt. A million parts handed over at once without receipts would
// otherwise time out in one transaction holding them all in memory; the
// next ticks, due at once, take the rest.
const receiptSweepMax = 1000

func (w *txWriter) sweepReceipts(before time.Time) error {
	pending := w.tx.Bucket(bPending)
	c := pending.Cursor()
	limit := timeKey(before, nil)
	var raw [][]byte
	for k, _ := c.First(); k != nil && len(raw) < receiptSweepMax && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
		raw = append(raw, append([]byte(nil), k...))
	}
	for _, k := range raw {
		m, err := w.msg(keyFrom(k[8:]))
		if errors.Is(err, ErrNotFound) {
			// An entry no message stands behind would come first in every
			// tick from now on: it goes.
			if err := pending.Delete(k); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for i := range m.Parts {
			if m.Parts[i].Status == batch.StatusOn {
				if err := w.applyPart(m, i, batch.StatusNo, batch.CodeReceiptTimeout); err != nil {
					return err
				}
			}
		}
		if m.Status == batch.StatusOn { // no parts known
			if err := w.setStatus(m, batch.StatusNo, batch.CodeReceiptTimeout); err != nil {
				return err
			}
		}
		if m.Status != batch.StatusOn {
			// Leaving "on" deleted the message's entry; one left behind
			// under another time would come first in every tick.
			if err := pending.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// PromoteDue moves every scheduled batch whose time has come to sending and
// returns them.
func (s *Store) PromoteDue(now time.Time) ([]*Batch, error) {
	var out []*Batch
	if next, ok := s.NextDue(); !ok || next.After(now) {
		return nil, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		out = nil
		c := tx.Bucket(bDue).Cursor()
		limit := timeKey(now, nil)
		var keys [][]byte
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := tx.Bucket(bDue).Delete(k); err != nil {
				return err
			}
			b, err := getBatch(tx, binary.BigEndian.Uint64(k[8:]))
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if !BatchTransition(b.State, Sending) {
				continue
			}
			b.State = Sending
			if err := activate(tx, b); err != nil {
				return err
			}
			if err := putBatch(tx, b); err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("promote due batches: %w", err)
	}
	return out, nil
}

// firstTime returns the time prefix of the first key of a time-keyed
// bucket at or after from (the zero time: the earliest entry).
func (s *Store) firstTime(bucket []byte, from time.Time) (time.Time, bool) {
	var t time.Time
	var ok bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		k, _ := c.First()
		if !from.IsZero() {
			k, _ = c.Seek(timeKey(from, nil))
		}
		if k != nil {
			t, ok = time.Unix(0, int64(binary.BigEndian.Uint64(k))), true
		}
		return nil
	})
	return t, ok
}

// NextDue returns the send time of the earliest scheduled batch.
func (s *Store) NextDue() (time.Time, bool) { return s.firstTime(bDue, time.Time{}) }

// NextRetry returns the earliest retry time at or after from (the zero
// time: the earliest of all).
func (s *Store) NextRetry(from time.Time) (time.Time, bool) { return s.firstTime(bRetry, from) }

// NextReceiptCheck returns the earliest hand-over time still waiting for
// receipts.
func (s *Store) NextReceiptCheck() (time.Time, bool) { return s.firstTime(bPending, time.Time{}) }

// BatchRef names a batch and its account.
type BatchRef struct {
	ID      uint64
	Account string
}

// activate and deactivate add a batch to and remove it from the sending
// batches (and those with messages for a first hand-over).
func activate(tx *bolt.Tx, b *Batch) error {
	if err := tx.Bucket(bActive).Put(u64(b.ID), nil); err != nil {
		return err
	}
	return tx.Bucket(bFresh).Put(freshKey(b.Account, b.ID), nil)
}

func deactivate(tx *bolt.Tx, b *Batch) error {
	if err := tx.Bucket(bActive).Delete(u64(b.ID)); err != nil {
		return err
	}
	return tx.Bucket(bFresh).Delete(freshKey(b.Account, b.ID))
}

// freshKey is a fresh batch's key: its account first, so that each
// account's batches are read in their order without reading the others'.
func freshKey(account string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(account, ""), id)
}

// FreshAccounts returns the accounts (in lower case, sorted) that have
// sending batches with messages waiting for their first hand-over. It
// reads one entry per account.
func (s *Store) FreshAccounts() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bFresh).Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("fresh entry %x: no account", k)
			}
			out = append(out, string(k[:i]))
			k, _ = c.Seek(append(k[:i:i], 1)) // past this account's entries
		}
		return nil
	})
	return out, err
}

// FreshBatches returns up to max of account's sending batches after id
// after, in id order, that may still have messages waiting for their first
// hand-over: those a Tick's Exhausted has not removed. The dispatcher reads
// them a page at a time, and stops at its rate limit, so the cost of a tick
// does not grow with the batches that only wait for receipts.
func (s *Store) FreshBatches(account string, after uint64, max int) ([]*Batch, error) {
	var out []*Batch
	prefix := acctKey(account, "")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bFresh).Cursor()
		for k, _ := c.Seek(freshKey(account, after+1)); k != nil && bytes.HasPrefix(k, prefix) && len(out) < max; k, _ = c.Next() {
			b, err := getBatch(tx, binary.BigEndian.Uint64(k[len(prefix):]))
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// ActiveBatches returns the batches in state sending, in id order.
func (s *Store) ActiveBatches() ([]*Batch, error) {
	var out []*Batch
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bActive).ForEach(func(k, _ []byte) error {
			b, err := getBatch(tx, binary.BigEndian.Uint64(k))
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					return nil
				}
				return err
			}
			out = append(out, b)
			return nil
		})
	})
	return out, err
}

// Retry is a due retry and the account of its batch.
type Retry struct {
	*Message
	Account string
	// Deadline is the batch's: past it, the retry expires instead.
	Deadline time.Time
}

// DueRetries returns up to max messages whose retry time is at or before
// now, in that order, from the retry entry after after (nil: the first),
// and the entry of the last one returned, to start the next page from.
// Entries of accounts for which skip (if not nil) returns true are passed
// over without decoding their message (entries written before they
// recorded the account are always returned).
func (s *Store) DueRetries(now time.Time, after []byte, max int, skip func(account string) bool) ([]Retry, []byte, error) {
	var out []Retry
	var last []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bRetry).Cursor()
		limit := timeKey(now, nil)
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < max && bytes.Compare(k[:8], limit) <= 0; k, v = c.Next() {
			if skip != nil && len(v) > 0 && skip(string(v)) {
				continue
			}
			m, err := getMsg(tx, keyFrom(k[8:]))
			if err == nil {
				var b *Batch
				if b, err = getBatch(tx, m.Batch); err == nil {
					out = append(out, Retry{Message: m, Account: b.Account, Deadline: b.Deadline})
					last = append(last[:0], k...)
					continue
				}
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		return nil
	})
	return out, last, err
}

// FreshMessages returns up to max messages of batch id after line that are
// waiting for their first hand-over, in line order, and the last line it
// looked at (so the caller's cursor can move past refused recipients).
func (s *Store) FreshMessages(id uint64, after, max int) ([]*Message, int, error) {
	var out []*Message
	last := after
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bMsgs).Cursor()
		prefix := u64(id)
		hb := tx.Bucket(bHandover)
		for k, v := c.Seek(Key{id, after + 1}.bytes()); k != nil && bytes.HasPrefix(k, prefix) && len(out) < max; k, v = c.Next() {
			key := keyFrom(k)
			last = key.Line
			if msgStatus(v) != batch.StatusWait || hb.Get(k) != nil {
				continue
			}
			m, err := decodeMsg(key, v)
			if err != nil {
				return err
			}
			if m.Status != batch.StatusWait || !m.NextTry.IsZero() || m.Attempts > 0 {
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	return out, last, err
}

// AwaitedPartIDs returns the provider ids of the parts still waiting for a
// receipt, taken from the most recently handed messages back until there
// are max (a message's parts all count), the most recent last. A driver that matches receipts writing an id differently
// than its submit answer did (sender.SMPP) learns them again at start-up.
func (s *Store) AwaitedPartIDs(max int) ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bPending).Cursor()
		for k, _ := c.Last(); k != nil && len(ids) < max; k, _ = c.Prev() {
			m, err := getMsg(tx, keyFrom(k[8:]))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			for _, p := range slices.Backward(m.Parts) {
				if p.ID != "" && p.Status == batch.StatusOn {
					ids = append(ids, p.ID)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("awaited part ids: %w", err)
	}
	slices.Reverse(ids)
	return ids, nil
}
