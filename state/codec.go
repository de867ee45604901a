package state

import (
	"encoding/binary"
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
