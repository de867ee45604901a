package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"smsdrop/batch"
)

// Messages are the store's hot records (the dispatcher reads and rewrites
// each one several times), so they use a compact binary encoding rather than
// JSON: varints and length-prefixed strings, in a fixed field order after a
// version byte.

const msgVersion = 1

var errCorrupt = errors.New("corrupt message record")

type enc struct{ b []byte }

func (e *enc) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.b = binary.AppendVarint(e.b, 0)
		return
	}
	e.b = binary.AppendVarint(e.b, t.UnixNano())
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	n := d.uint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *dec) time() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func encodeMsg(m *Message) []byte {
	e := enc{b: make([]byte, 0, 96+len(m.Text)+len(m.Input)+len(m.Reply)+24*len(m.History)+24*len(m.Parts))}
	e.b = append(e.b, msgVersion)
	e.uint(uint64(m.Index))
	e.str(m.Input)
	e.str(m.Number)
	e.str(m.Text)
	e.str(string(m.Encoding))
	e.uint(uint64(m.Segments))
	e.str(string(m.Status))
	e.str(m.Code)
	e.uint(uint64(len(m.Parts)))
	for _, p := range m.Parts {
		e.str(p.ID)
		e.str(string(p.Status))
		e.str(p.Code)
	}
	e.time(m.Handed)
	e.time(m.Updated)
	e.str(m.Reply)
	e.uint(uint64(m.Attempts))
	e.time(m.NextTry)
	e.uint(uint64(len(m.History)))
	for _, h := range m.History {
		e.time(h.At)
		e.str(string(h.Status))
		e.str(h.Code)
	}
	return e.b
}

func decodeMsgInto(m *Message, b []byte) error {
	if len(b) == 0 || b[0] != msgVersion {
		return errCorrupt
	}
	d := dec{b: b[1:]}
	m.Index = int(d.uint())
	m.Input = d.str()
	m.Number = d.str()
	m.Text = d.str()
	m.Encoding = batch.Encoding(d.str())
	m.Segments = int(d.uint())
	m.Status = batch.Status(d.str())
	m.Code = d.str()
	if n := d.uint(); n > 0 && n <= 255 && d.err == nil {
		m.Parts = make([]Part, n)
		for i := range m.Parts {
			m.Parts[i] = Part{ID: d.str(), Status: batch.Status(d.str()), Code: d.str()}
		}
	}
	m.Handed = d.time()
	m.Updated = d.time()
	m.Reply = d.str()
	m.Attempts = int(d.uint())
	m.NextTry = d.time()
	if n := d.uint(); n > 0 && n <= 1024 && d.err == nil {
		m.History = make([]Change, n)
		for i := range m.History {
			m.History[i] = Change{At: d.time(), Status: batch.Status(d.str()), Code: d.str()}
		}
	}
	return d.err
}

// msgStatus reads only the status of an encoded message, without decoding
// the rest: scans skip most records this way.
func msgStatus(b []byte) batch.Status {
	if len(b) == 0 || b[0] != msgVersion {
		return ""
	}
	d := dec{b: b[1:]}
	d.uint()
	for range 4 {
		n := d.uint()
		if d.err != nil || n > uint64(len(d.b)) {
			return ""
		}
		d.b = d.b[n:]
	}
	d.uint()
	return batch.Status(d.str())
}

// Batch records are read on every dispatcher tick and every results write,
// so they use the same binary encoding. Records stored as JSON by earlier
// versions (they start with '{') are still read.

// batchVersion 3 added ResultsRev at the end; records of version 2 are
// still read (ResultsRev 0).
const (
	batchVersion   = 3
	batchVersionV2 = 2
)

func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *enc) strs(ss []string) {
	e.uint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (d *dec) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.err = errCorrupt
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

func (d *dec) strs() []string {
	n := d.uint()
	if d.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(d.b)) { // every string takes at least one byte
		d.err = errCorrupt
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func encodeBatch(b *Batch) []byte {
	n := 128 + len(b.Account) + len(b.Name) + len(b.Hash)
	for _, s := range b.Errors {
		n += len(s) + 2
	}
	for _, s := range b.Warnings {
		n += len(s) + 2
	}
	e := enc{b: make([]byte, 0, n)}
	e.b = append(e.b, batchVersion)
	e.uint(b.ID)
	e.str(b.Account)
	e.str(b.Name)
	e.str(b.Hash)
	e.str(string(b.State))
	e.time(b.Received)
	e.time(b.SendAt)
	e.bool(b.Scheduled)
	e.time(b.Deadline)
	e.str(b.Folder)
	e.bool(b.Moved)
	e.uint(uint64(b.Messages))
	e.uint(uint64(b.Recipients))
	e.uint(uint64(b.Segments))
	for _, c := range b.Counts {
		e.uint(uint64(c))
	}
	e.uint(uint64(b.Optout))
	e.uint(b.DuplicateOf)
	e.strs(b.Errors)
	e.strs(b.Warnings)
	e.uint(uint64(b.Cursor))
	e.time(b.Finished)
	e.bool(b.ResultsFinal)
	e.uint(b.SameNameBefore)
	e.uint(b.ResultsRev)
	return e.b
}

func decodeBatchInto(b *Batch, v []byte) error {
	if len(v) > 0 && v[0] == '{' {
		return json.Unmarshal(v, b)
	}
	if len(v) == 0 || (v[0] != batchVersion && v[0] != batchVersionV2) {
		return errCorrupt
	}
	version := v[0]
	d := dec{b: v[1:]}
	b.ID = d.uint()
	b.Account = d.str()
	b.Name = d.str()
	b.Hash = d.str()
	b.State = BatchState(d.str())
	b.Received = d.time()
	b.SendAt = d.time()
	b.Scheduled = d.bool()
	b.Deadline = d.time()
	b.Folder = d.str()
	b.Moved = d.bool()
	b.Messages = int(d.uint())
	b.Recipients = int(d.uint())
	b.Segments = int(d.uint())
	for i := range b.Counts {
		b.Counts[i] = int(d.uint())
	}
	b.Optout = int(d.uint())
	b.DuplicateOf = d.uint()
	b.Errors = d.strs()
	b.Warnings = d.strs()
	b.Cursor = int(d.uint())
	b.Finished = d.time()
	b.ResultsFinal = d.bool()
	b.SameNameBefore = d.uint()
	b.ResultsRev = 0
	if version >= 3 {
		b.ResultsRev = d.uint()
	}
	if d.err == nil && len(d.b) != 0 {
		return errCorrupt
	}
	return d.err
}
