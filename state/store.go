// Package state is smsdrop's store: batches, messages, their status history,
// provider ids, file hashes, opt-outs and replies, in one bbolt file. It is the
// only package that imports bbolt. Writes are grouped: intake stores a whole
// batch in one transaction, and the dispatcher applies a whole tick of
// hand-overs, outcomes, receipts and replies in one transaction.
package state

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"smsdrop/batch"
)

var (
	bMeta     = []byte("meta")     // "batch_seq", "reply_seq"
	bBatches  = []byte("batches")  // id → Batch (codec.go)
	bMsgs     = []byte("msgs")     // batch|line → Message JSON
	bHashes   = []byte("hashes")   // account NUL sha256 → id (most recent batch with these bytes)
	bDue      = []byte("due")      // sendAt|id → nil: scheduled batches
	bActive   = []byte("active")   // id → nil: batches in state sending
	bFresh    = []byte("fresh")    // account NUL id → nil: sending batches that may still have messages waiting for their first hand-over
	bHandover = []byte("handover") // batch|line → nil: hand-over in flight
	bRetry    = []byte("retry")    // nextTry|batch|line → account (lower case; empty in older stores)
	bPending  = []byte("pending")  // handed|batch|line → nil: waiting for receipts
	bProvider = []byte("provider") // provider part id → batch|line|part(be16)
	bLastMsg  = []byte("last_msg") // account NUL e164 → batch|line; "" account for any
	bOptout   = []byte("optout")   // account NUL e164 → time
	bReplies  = []byte("replies")  // seq → Reply JSON
	bByTime   = []byte("by_time")  // received|id → nil, for retention
	bInbox    = []byte("inbox")    // account NUL name → id: stored, file not yet moved out of the inbox
	bNames    = []byte("names")    // account NUL name → id of the newest batch with that file name

	allBuckets = [][]byte{bMeta, bBatches, bMsgs, bHashes, bDue, bActive, bFresh, bHandover, bRetry, bPending, bProvider, bLastMsg, bOptout, bReplies, bByTime, bInbox, bNames}
)

// ErrNotFound is returned for an unknown batch.
var ErrNotFound = errors.New("not found")

// Store is the bbolt-backed store.
type Store struct {
	db      *bolt.DB
	path    string
	group   groupCommit
	optouts optoutCache
}

// Open opens (creating if needed) the store at path.
func Open(path string) (*Store, error) {
	// A large initial mmap (address space, not memory) spares the remaps a
	// growing file would otherwise cost in the middle of a big batch.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType,
		NoFreelistSync: true, InitialMmapSize: 1 << 30})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w (is another smsdrop running on this data_dir?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := addFresh(tx); err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return &Store{db: db, path: path, group: groupCommit{db: db}}, nil
}

// addFresh builds the fresh bucket anew from the sending batches when the
// store opens: the first ticks take out again those without messages left
// for a first hand-over (one short read each). So it is created in a store
// written before it existed, takes the layout of this version, and is
// mended when an older smsdrop, which did not keep it, wrote to the store
// meanwhile: a sending batch missing from it would never be sent.
func addFresh(tx *bolt.Tx) error {
	active := tx.Bucket(bActive)
	if active == nil {
		return nil // a new store
	}
	if tx.Bucket(bFresh) != nil {
		if err := tx.DeleteBucket(bFresh); err != nil {
			return err
		}
	}
	fresh, err := tx.CreateBucket(bFresh)
	if err != nil {
		return err
	}
	return active.ForEach(func(k, _ []byte) error {
		b, err := getBatch(tx, binary.BigEndian.Uint64(k))
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		return fresh.Put(freshKey(b.Account, b.ID), nil)
	})
}

// SetCommitLinger makes a commit wait up to d for other writes to share it
// while writes stream in (4 within 10 ms): during a flood of small files
// each commit then stores several files instead of one, and every commit
// waits for two fsyncs. The few writes of a single upload commit at once.
// full is how many writers can wait at the same time (the intake's
// workers): once that many wait, the commit stops waiting, or the linger
// would cap a flood at full files per linger. 0 waits d every time.
// Measured on the real clock (it paces the disk); d = 0 (the default)
// never waits. Call it before the store is used.
func (s *Store) SetCommitLinger(d time.Duration, full int) {
	s.group.linger, s.group.full = d, full
	s.group.fullCh = make(chan struct{}, 1)
}

// Close commits what MarkMovedLater recorded and closes the store.
func (s *Store) Close() error {
	ferr := s.FlushMoved()
	if err := s.db.Close(); err != nil {
		return err
	}
	return ferr
}

// Size returns the size in bytes of the store's file.
func (s *Store) Size() int64 {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Ping checks that the store answers a read transaction and, when the last
// commit failed (a full disk, an I/O error), that it takes a write again:
// it tries one, so that health comes back with the disk.
func (s *Store) Ping() error {
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return err
	}
	if s.group.failed.Load() == nil {
		return nil
	}
	err := s.group.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put([]byte("health_probe"), nil)
	})
	if err != nil {
		return fmt.Errorf("the store cannot write (check the disk holding it): %w", err)
	}
	return nil
}

func hashKey(account string, sum []byte) []byte {
	k := make([]byte, 0, len(account)+1+len(sum))
	k = append(k, strings.ToLower(account)...)
	k = append(k, 0)
	return append(k, sum...)
}

func acctKey(account, number string) []byte {
	return []byte(strings.ToLower(account) + "\x00" + number)
}

func getBatch(tx *bolt.Tx, id uint64) (*Batch, error) {
	v := tx.Bucket(bBatches).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("batch %d: %w", id, ErrNotFound)
	}
	var b Batch
	if err := decodeBatchInto(&b, v); err != nil {
		return nil, fmt.Errorf("decode batch %d: %w", id, err)
	}
	return &b, nil
}

func putBatch(tx *bolt.Tx, b *Batch) error {
	return tx.Bucket(bBatches).Put(u64(b.ID), encodeBatch(b))
}

func getMsg(tx *bolt.Tx, k Key) (*Message, error) {
	v := tx.Bucket(bMsgs).Get(k.bytes())
	if v == nil {
		return nil, fmt.Errorf("message %d-%d: %w", k.Batch, k.Line, ErrNotFound)
	}
	return decodeMsg(k, v)
}

func decodeMsg(k Key, v []byte) (*Message, error) {
	m := &Message{Batch: k.Batch, Line: k.Line}
	if err := decodeMsgInto(m, v); err != nil {
		return nil, fmt.Errorf("decode message %d-%d: %w", k.Batch, k.Line, err)
	}
	return m, nil
}

func putMsg(tx *bolt.Tx, m *Message) error {
	return tx.Bucket(bMsgs).Put(Key{m.Batch, m.Line}.bytes(), encodeMsg(m))
}

// Batch returns the stored batch id.
func (s *Store) Batch(id uint64) (*Batch, error) {
	var b *Batch
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		b, err = getBatch(tx, id)
		return err
	})
	return b, err
}

// BatchWithMessages calls fn with the batch, the newest batch of its account
// with the same file name (see Latest), and then each of its messages in
// line order, all from one consistent read transaction.
func (s *Store) BatchWithMessages(id uint64, fn func(b *Batch, latest uint64, next func() (*Message, error)) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b, err := getBatch(tx, id)
		if err != nil {
			return err
		}
		latest := latestIn(tx, b.Account, b.Name)
		c := tx.Bucket(bMsgs).Cursor()
		prefix := u64(id)
		k, v := c.Seek(prefix)
		next := func() (*Message, error) {
			if k == nil || !bytes.HasPrefix(k, prefix) {
				return nil, nil
			}
			m, err := decodeMsg(keyFrom(k), v)
			k, v = c.Next()
			return m, err
		}
		return fn(b, latest, next)
	})
}

// Messages returns every message of batch id in line order.
func (s *Store) Messages(id uint64) ([]*Message, error) {
	var out []*Message
	err := s.BatchWithMessages(id, func(_ *Batch, _ uint64, next func() (*Message, error)) error {
		for {
			m, err := next()
			if err != nil || m == nil {
				return err
			}
			out = append(out, m)
		}
	})
	return out, err
}

// LookupHash returns the most recent batch of account whose file had these
// bytes, or nil.
func (s *Store) LookupHash(account string, sum []byte) (*Batch, error) {
	var b *Batch
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bHashes).Get(hashKey(account, sum))
		if v == nil {
			return nil
		}
		var err error
		b, err = getBatch(tx, binary.BigEndian.Uint64(v))
		if errors.Is(err, ErrNotFound) {
			b, err = nil, nil // swept by retention
		}
		return err
	})
	return b, err
}

// OptedOut returns the account's opt-out list as a set of E.164 numbers.
// The set is shared, and read by every file of the account until a number
// is added: callers must not modify it.
func (s *Store) OptedOut(account string) (map[string]bool, error) {
	gen, set := s.optouts.get(account)
	if set != nil {
		return set, nil
	}
	set = map[string]bool{}
	prefix := acctKey(account, "")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bOptout).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			set[string(k[len(prefix):])] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.optouts.put(account, gen, set)
	return set, nil
}

// optoutCache keeps each account's opt-out set between files: reading a
// list of 100,000 numbers for every file of a flood of small ones cost
// more than the rest of their processing.
//
// gen counts the commits that added opt-outs; a set read while one
// committed is kept under the older gen, so it is read again next time,
// never kept stale.
type optoutCache struct {
	mu   sync.Mutex
	gen  uint64
	sets map[string]optoutSet
}

type optoutSet struct {
	gen uint64
	set map[string]bool
}

// get returns the current generation, and the account's set if it is
// current.
func (c *optoutCache) get(account string) (uint64, map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.sets[strings.ToLower(account)]
	if ok && e.gen == c.gen {
		return c.gen, e.set
	}
	return c.gen, nil
}

func (c *optoutCache) put(account string, gen uint64, set map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sets == nil {
		c.sets = map[string]optoutSet{}
	}
	c.sets[strings.ToLower(account)] = optoutSet{gen: gen, set: set}
}

// changed is called after a commit that may have added opt-outs.
func (c *optoutCache) changed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.sets)
}

// NewBatch is what intake hands the store for one processed file.
type NewBatch struct {
	Account  string
	Name     string
	Sum      []byte // sha256 of the file
	Received time.Time
	// Parsed is the parsed file; nil with Invalid set for a file that could
	// not be parsed at all.
	Parsed *batch.Batch
	// DedupeWindow: the same bytes accepted for this account less than this
	// long ago make a duplicate.
	DedupeWindow time.Duration
	// Validity is how long after SendAt retries go on.
	Validity time.Duration
}

// CreateBatch stores a processed file in one transaction: the batch, its
// messages, its hash and its schedule. It decides the state: rejected for an
// invalid file, duplicate for the same bytes accepted within the dedupe
// window, else scheduled or sending.
func (s *Store) CreateBatch(nb NewBatch) (*Batch, error) {
	var out *Batch
	err := s.group.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		seq := uint64(0)
		if v := meta.Get([]byte("batch_seq")); v != nil {
			seq = binary.BigEndian.Uint64(v)
		}
		seq++
		if err := meta.Put([]byte("batch_seq"), u64(seq)); err != nil {
			return err
		}
		p := nb.Parsed
		b := &Batch{
			ID:       seq,
			Account:  nb.Account,
			Name:     nb.Name,
			Hash:     hex.EncodeToString(nb.Sum),
			Received: nb.Received,
		}
		if p != nil {
			b.Messages = len(p.Messages)
			b.Recipients = p.RecipientLines
			b.Errors = issueStrings(p.Errors)
			b.Warnings = issueStrings(p.Warnings)
		}
		hk := hashKey(nb.Account, nb.Sum)
		var prev *Batch
		if v := tx.Bucket(bHashes).Get(hk); v != nil {
			if pb, err := getBatch(tx, binary.BigEndian.Uint64(v)); err == nil {
				prev = pb
			}
		}
		switch {
		case p == nil || !p.Valid():
			b.State, b.Folder = Rejected, "rejected"
			if len(b.Errors) == 0 {
				b.Errors = []string{"the file could not be read"}
			}
			// Nothing is sent: every recipient line is ko, as in a
			// duplicate, so the six counts add up to recipients (§7).
			b.Counts[3] = b.Recipients
		case prev != nil && prev.State != Rejected && prev.State != Duplicate &&
			nb.Received.Sub(prev.Received) < nb.DedupeWindow:
			b.State, b.Folder, b.DuplicateOf = Duplicate, "rejected", prev.ID
			b.Warnings = append(b.Warnings, fmt.Sprintf("same content as batch %d received %s: nothing sent again", prev.ID, prev.Received.UTC().Format(time.RFC3339)))
			b.Counts[3] = b.Recipients // every recipient ko: nothing is sent
		default:
			b.SendAt = p.SendAt
			b.Scheduled = p.Scheduled
			b.Deadline = p.SendAt.Add(nb.Validity)
			b.Segments = p.Segments
			if p.Scheduled {
				b.State, b.Folder = Scheduled, "scheduled"
				if err := tx.Bucket(bDue).Put(timeKey(p.SendAt, u64(b.ID)), nil); err != nil {
					return err
				}
			} else {
				b.State, b.Folder = Sending, "archive"
				if err := activate(tx, b); err != nil {
					return err
				}
			}
			// Message keys of a new batch come after every existing key:
			// full pages split less.
			tx.Bucket(bMsgs).FillPercent = 0.95
			for i := range p.Recipients {
				r := &p.Recipients[i]
				m := &Message{Batch: b.ID, Line: r.Line, Index: r.Message, Input: r.Input, Number: r.Number,
					Text: r.Text, Encoding: r.Encoding, Segments: r.Segments, Status: r.Status, Code: r.Code,
					Updated: nb.Received}
				m.History = []Change{{At: nb.Received, Status: r.Status, Code: r.Code}}
				if err := putMsg(tx, m); err != nil {
					return err
				}
				b.addCount(r.Status, 1)
				if r.Code == batch.CodeOptedOut {
					b.Optout++
				}
			}
			if b.Count(batch.StatusWait) == 0 {
				// Nothing to send: every recipient was refused at validation.
				b.State = Done
				b.Finished = nb.Received
				if err := deactivate(tx, b); err != nil {
					return err
				}
				_ = tx.Bucket(bDue).Delete(timeKey(p.SendAt, u64(b.ID)))
			}
		}
		if b.State != Rejected && b.State != Duplicate {
			if err := tx.Bucket(bHashes).Put(hk, u64(b.ID)); err != nil {
				return err
			}
		}
		// Until the file has left the inbox, its name points at this batch, so
		// a crash before the move is recognised and the file not processed twice.
		if err := tx.Bucket(bInbox).Put(acctKey(nb.Account, nb.Name), u64(b.ID)); err != nil {
			return err
		}
		b.SameNameBefore = latestIn(tx, nb.Account, nb.Name)
		if err := tx.Bucket(bNames).Put(acctKey(nb.Account, nb.Name), u64(b.ID)); err != nil {
			return err
		}
		if err := tx.Bucket(bByTime).Put(timeKey(b.Received, u64(b.ID)), nil); err != nil {
			return err
		}
		out = b
		return putBatch(tx, b)
	})
	if err != nil {
		return nil, fmt.Errorf("store batch for %s/%s: %w", nb.Account, nb.Name, err)
	}
	return out, nil
}

func issueStrings(is []batch.Issue) []string {
	out := make([]string, len(is))
	for i, x := range is {
		out[i] = x.String()
	}
	return out
}

// InboxBatch returns the batch stored for the inbox file name of account
// whose file has not been moved out yet, or nil.
func (s *Store) InboxBatch(account, name string) (*Batch, error) {
	var b *Batch
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bInbox).Get(acctKey(account, name))
		if v == nil {
			return nil
		}
		var err error
		b, err = getBatch(tx, binary.BigEndian.Uint64(v))
		if errors.Is(err, ErrNotFound) {
			b, err = nil, nil
		}
		return err
	})
	return b, err
}

// MarkMoved records that batch id's file has left the inbox.
func (s *Store) MarkMoved(id uint64) error {
	return s.group.update(func(tx *bolt.Tx) error { return markMoved(tx, id) })
}

// MarkMovedLater records it with the next transaction, without waiting:
// during a flood that is the next file's, and FlushMoved ends a quiet spell.
// Until then a restart finds the batch's inbox entry and its file in its
// folder, and the intake records the move then (the file is never processed
// twice).
func (s *Store) MarkMovedLater(id uint64) {
	s.group.later(func(tx *bolt.Tx) error {
		if err := markMoved(tx, id); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
}

// FlushMoved commits the moves MarkMovedLater recorded, if any.
func (s *Store) FlushMoved() error { return s.group.flush() }

func markMoved(tx *bolt.Tx, id uint64) error {
	b, err := getBatch(tx, id)
	if err != nil {
		return err
	}
	ik := acctKey(b.Account, b.Name)
	if v := tx.Bucket(bInbox).Get(ik); v != nil && binary.BigEndian.Uint64(v) == id {
		if err := tx.Bucket(bInbox).Delete(ik); err != nil {
			return err
		}
	}
	if b.Moved {
		return nil
	}
	b.Moved = true
	return putBatch(tx, b)
}

// Recover turns every hand-over that was in flight when smsdrop stopped into
// "no" / UNCONFIRMED: the provider may or may not have it, so it is never
// sent again (SPEC §9). It returns the batches it changed.
func (s *Store) Recover(now time.Time) ([]uint64, error) {
	changed := map[uint64]bool{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		w := newTxWriter(tx, now)
		c := tx.Bucket(bHandover).Cursor()
		var keys [][]byte
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			key := keyFrom(k)
			m, err := w.msg(key)
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					_ = tx.Bucket(bHandover).Delete(k)
					continue
				}
				return err
			}
			if m.Status == batch.StatusWait {
				if err := w.setStatus(m, batch.StatusNo, batch.CodeUnconfirmed); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bHandover).Delete(k); err != nil {
				return err
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		for id := range w.batches {
			changed[id] = true
		}
		return nil
	})
	ids := make([]uint64, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	return ids, err
}

// BatchesWhere returns the batches for which keep returns true, in id order.
// It decodes every batch record: meant for start-up and sweeps.
func (s *Store) BatchesWhere(keep func(*Batch) bool) ([]*Batch, error) {
	var out []*Batch
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bBatches).ForEach(func(k, v []byte) error {
			var b Batch
			if err := decodeBatchInto(&b, v); err != nil {
				return fmt.Errorf("decode batch: %w", err)
			}
			if keep(&b) {
				out = append(out, &b)
			}
			return nil
		})
	})
	return out, err
}

// Replies returns the replies of account received in [from, to), in order.
func (s *Store) Replies(account string, from, to time.Time) ([]Reply, error) {
	var out []Reply
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bReplies).Cursor()
		end := timeKey(to, nil)
		for k, v := c.Seek(timeKey(from, nil)); k != nil && bytes.Compare(k[:8], end) < 0; k, v = c.Next() {
			var r Reply
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode reply: %w", err)
			}
			if !strings.EqualFold(r.Account, account) {
				continue
			}
			r.Seq = binary.BigEndian.Uint64(k[8:])
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Latest returns the id of the newest batch of account whose file had this
// name, or 0: that batch owns results/NAME.report.
func (s *Store) Latest(account, name string) uint64 {
	var id uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		id = latestIn(tx, account, name)
		return nil
	})
	return id
}

// latestIn is Latest within tx.
func latestIn(tx *bolt.Tx, account, name string) uint64 {
	if v := tx.Bucket(bNames).Get(acctKey(account, name)); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// Rendered is a batch's revision (Batch.ResultsRev) as its result files
// show it.
type Rendered struct{ ID, Rev uint64 }

// MarkResultsFinal records that the final result files of the batches are
// on disk, so start-up does not render them again: only for a batch still
// at the revision rendered, since a change meanwhile (a reply, a late
// receipt) is not in those files.
func (s *Store) MarkResultsFinal(rs ...Rendered) error {
	if len(rs) == 0 {
		return nil
	}
	return s.group.update(func(tx *bolt.Tx) error {
		for _, r := range rs {
			b, err := getBatch(tx, r.ID)
			if errors.Is(err, ErrNotFound) {
				continue // swept meanwhile
			}
			if err != nil {
				return err
			}
			if b.ResultsFinal || b.ResultsRev != r.Rev {
				continue
			}
			b.ResultsFinal = true
			if err := putBatch(tx, b); err != nil {
				return err
			}
		}
		return nil
	})
}
