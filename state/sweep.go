package state

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepChunk bounds the batches removed in one transaction, so a sweep
// never holds the write lock for long.
const sweepChunk = 50

// Sweep removes the records of final batches received and finished before
// cutoff, with their messages, provider ids and index entries, and replies
// received before cutoff. It returns the removed batches so the caller can
// delete their files. bbolt reuses the freed pages, so the file stops
// growing once traffic is steady.
func (s *Store) Sweep(cutoff time.Time) ([]*Batch, error) {
	var removed []*Batch
	// Each chunk starts after the last entry the one before looked at: the
	// batches kept (still running, or finished after the cutoff) stay in
	// the index, and a chunk full of them must not end the sweep.
	var after []byte
	for {
		var chunk []*Batch
		more := false
		err := s.db.Update(func(tx *bolt.Tx) error {
			chunk = chunk[:0]
			c := tx.Bucket(bByTime).Cursor()
			limit := timeKey(cutoff, nil)
			var keys [][]byte
			k, _ := c.First()
			if after != nil {
				if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			}
			for ; k != nil && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
				if len(keys) == sweepChunk {
					more = true
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			if len(keys) > 0 {
				after = keys[len(keys)-1]
			}
			for _, k := range keys {
				id := binary.BigEndian.Uint64(k[8:])
				b, err := getBatch(tx, id)
				if err != nil {
					_ = tx.Bucket(bByTime).Delete(k)
					continue
				}
				if !b.State.Final() || (!b.Finished.IsZero() && !b.Finished.Before(cutoff)) {
					continue // still running, or finished recently: kept
				}
				if err := deleteBatch(tx, b); err != nil {
					return err
				}
				if err := tx.Bucket(bByTime).Delete(k); err != nil {
					return err
				}
				chunk = append(chunk, b)
			}
			return nil
		})
		if err != nil {
			return removed, fmt.Errorf("sweep batches: %w", err)
		}
		removed = append(removed, chunk...)
		if !more {
			break
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bReplies).Cursor()
		limit := timeKey(cutoff, nil)
		var keys [][]byte
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := tx.Bucket(bReplies).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("sweep replies: %w", err)
	}
	return removed, nil
}

func deleteIfPoints(b *bolt.Bucket, key, val []byte) error {
	if v := b.Get(key); v != nil && bytes.HasPrefix(v, val) {
		return b.Delete(key)
	}
	return nil
}

func deleteBatch(tx *bolt.Tx, b *Batch) error {
	id := u64(b.ID)
	c := tx.Bucket(bMsgs).Cursor()
	var keys [][]byte
	for k, v := c.Seek(id); k != nil && bytes.HasPrefix(k, id); k, v = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
		m, err := decodeMsg(keyFrom(k), v)
		if err != nil {
			continue
		}
		for _, p := range m.Parts {
			if err := deleteIfPoints(tx.Bucket(bProvider), []byte(p.ID), k); err != nil {
				return err
			}
		}
		if !m.Handed.IsZero() {
			if err := tx.Bucket(bPending).Delete(pendingKey(m)); err != nil {
				return err
			}
		}
		if !m.NextTry.IsZero() {
			if err := tx.Bucket(bRetry).Delete(timeKey(m.NextTry, k)); err != nil {
				return err
			}
		}
		if m.Number != "" {
			for _, acct := range []string{b.Account, ""} {
				if err := deleteIfPoints(tx.Bucket(bLastMsg), acctKey(acct, m.Number), k); err != nil {
					return err
				}
			}
		}
	}
	for _, k := range keys {
		if err := tx.Bucket(bMsgs).Delete(k); err != nil {
			return err
		}
	}
	if sum, err := hex.DecodeString(b.Hash); err == nil {
		if err := deleteIfPoints(tx.Bucket(bHashes), hashKey(b.Account, sum), id); err != nil {
			return err
		}
	}
	for _, bk := range [][]byte{bNames, bInbox} {
		if err := deleteIfPoints(tx.Bucket(bk), acctKey(b.Account, b.Name), id); err != nil {
			return err
		}
	}
	return tx.Bucket(bBatches).Delete(id)
}
