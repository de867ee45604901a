package state

import (
	"encoding/binary"
	"fmt"
	"time"

	"smsdrop/batch"
)

// BatchState is the lifecycle state of a batch (SPEC §6).
type BatchState string

// Batch states.
const (
	Rejected  BatchState = "rejected"
	Duplicate BatchState = "duplicate"
	Scheduled BatchState = "scheduled"
	Sending   BatchState = "sending"
	Done      BatchState = "done"
	Cancelled BatchState = "cancelled"
)

// Final reports whether no message of a batch in this state can change any
// more because of smsdrop (receipts may still arrive for a cancelled batch).
func (s BatchState) Final() bool {
	switch s {
	case Rejected, Duplicate, Done, Cancelled:
		return true
	}
	return false
}

// batchTransitions is the batch state machine: from → allowed targets.
var batchTransitions = map[BatchState][]BatchState{
	Scheduled: {Sending, Cancelled},
	Sending:   {Done, Cancelled},
}

// BatchTransition reports whether a batch may move from one state to another.
func BatchTransition(from, to BatchState) bool {
	for _, t := range batchTransitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// statusRank orders message statuses so that a status never goes backwards:
// a late "on" after "ok" is ignored. "no" (unknown) may still be resolved by a
// late receipt; "ok" may become "rep" when a reply comes.
func statusRank(s batch.Status) int {
	switch s {
	case batch.StatusWait:
		return 0
	case batch.StatusOn:
		return 1
	case batch.StatusNo:
		return 2
	case batch.StatusOK, batch.StatusKO:
		return 3
	case batch.StatusRep:
		return 4
	}
	return -1
}

// StatusTransition reports whether a message may move from one status to
// another. It is the single rule the store applies to every update.
func StatusTransition(from, to batch.Status) bool {
	if from == to {
		return false
	}
	switch from {
	case batch.StatusKO, batch.StatusRep:
		return false // final
	case batch.StatusOK:
		return to == batch.StatusRep
	}
	return statusRank(to) > statusRank(from)
}

// Batch is the stored record of one processed file.
type Batch struct {
	ID          uint64     `json:"id"`
	Account     string     `json:"account"`
	Name        string     `json:"name"` // the file's name as uploaded
	Hash        string     `json:"hash"` // hex sha256 of the file's bytes
	State       BatchState `json:"state"`
	Received    time.Time  `json:"received"`
	SendAt      time.Time  `json:"send_at,omitzero"`
	Scheduled   bool       `json:"scheduled,omitempty"` // a D- in the future was given
	Deadline    time.Time  `json:"deadline,omitzero"`   // SendAt + validity
	Folder      string     `json:"folder"`              // where the file goes: scheduled, archive or rejected
	Moved       bool       `json:"moved,omitempty"`     // the file has left the inbox
	Messages    int        `json:"messages"`
	Recipients  int        `json:"recipients"`
	Segments    int        `json:"segments"`
	Counts      [6]int     `json:"counts"` // by batch.Statuses order
	Optout      int        `json:"optout,omitempty"`
	DuplicateOf uint64     `json:"duplicate_of,omitempty"`
	Errors      []string   `json:"errors,omitempty"`
	Warnings    []string   `json:"warnings,omitempty"`
	Cursor      int        `json:"cursor,omitempty"` // last line handed to the dispatcher's first pass
	Finished    time.Time  `json:"finished,omitzero"`
	// ResultsFinal: the result files of the final state are on disk, as of
	// revision ResultsRev. Any later change clears it, so that start-up
	// renders them again after a crash.
	ResultsFinal bool `json:"results_final,omitempty"`
	// SameNameBefore is the batch that last used this file name in this
	// account before this one (0: none), whose results this one's may have
	// to move aside.
	SameNameBefore uint64 `json:"same_name_before,omitempty"`
	// ResultsRev counts the transactions that changed what the batch's
	// result files show (statuses, replies, state) since it was stored.
	ResultsRev uint64 `json:"results_rev,omitempty"`
}

// FileName is the name the batch's file has in its folder: "<id>_NAME".
func (b *Batch) FileName() string { return fmt.Sprintf("%d_%s", b.ID, b.Name) }

// Count returns the number of recipients with status st.
func (b *Batch) Count(st batch.Status) int {
	for i, s := range batch.Statuses {
		if s == st {
			return b.Counts[i]
		}
	}
	return 0
}

func (b *Batch) addCount(st batch.Status, n int) {
	for i, s := range batch.Statuses {
		if s == st {
			b.Counts[i] += n
			return
		}
	}
}

// Part is one SMS part of a message as the provider knows it.
type Part struct {
	ID     string       `json:"id"`
	Status batch.Status `json:"s"`
	Code   string       `json:"c,omitempty"`
}

// Change is one entry of a message's status history.
type Change struct {
	At     time.Time    `json:"at"`
	Status batch.Status `json:"s"`
	Code   string       `json:"c,omitempty"`
}

// Message is the stored record of one recipient line.
type Message struct { // stored with encodeMsg (codec.go), not JSON
	Batch    uint64         `json:"-"`
	Line     int            `json:"-"`
	Index    int            `json:"m"`
	Input    string         `json:"i"`
	Number   string         `json:"n,omitempty"`
	Text     string         `json:"t,omitempty"`
	Encoding batch.Encoding `json:"e,omitempty"`
	Segments int            `json:"g"`
	Status   batch.Status   `json:"s"`
	Code     string         `json:"c,omitempty"`
	Parts    []Part         `json:"p,omitempty"`
	Handed   time.Time      `json:"h,omitzero"`
	Updated  time.Time      `json:"u,omitzero"`
	Reply    string         `json:"r,omitempty"`
	Attempts int            `json:"a,omitempty"`
	NextTry  time.Time      `json:"x,omitzero"`
	History  []Change       `json:"hist,omitempty"`
}

// ID is the message id of the CSV and the sim outbox: "<batch>-<line>".
func (m *Message) ID() string { return fmt.Sprintf("%d-%d", m.Batch, m.Line) }

// Key identifies a message: batch id and line.
type Key struct {
	Batch uint64
	Line  int
}

func (k Key) bytes() []byte {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], k.Batch)
	binary.BigEndian.PutUint32(b[8:], uint32(k.Line))
	return b[:]
}

func keyFrom(b []byte) Key {
	return Key{Batch: binary.BigEndian.Uint64(b[:8]), Line: int(binary.BigEndian.Uint32(b[8:12]))}
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func timeKey(t time.Time, rest []byte) []byte {
	b := make([]byte, 8+len(rest))
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano()))
	copy(b[8:], rest)
	return b
}

// Reply is a stored mobile-originated message.
type Reply struct {
	Seq      uint64    `json:"-"`
	Received time.Time `json:"received"`
	From     string    `json:"from"`
	Account  string    `json:"account"`
	Batch    uint64    `json:"batch,omitempty"`
	Line     int       `json:"line,omitempty"`
	Text     string    `json:"text"`
	OptOut   bool      `json:"optout,omitempty"`
}

// MessageID is the CSV message id of the message the reply answers.
func (r *Reply) MessageID() string {
	if r.Batch == 0 {
		return ""
	}
	return fmt.Sprintf("%d-%d", r.Batch, r.Line)
}
