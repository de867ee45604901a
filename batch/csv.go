package batch

import (
	"strconv"
	"time"
)

// CSVHeader is the header row of a NAME.csv result file (SPEC §7).
var CSVHeader = []string{"line", "message", "input", "recipient", "message_id", "status", "code", "segments", "encoding", "updated", "reply"}

// CSVRow is one recipient's row of a NAME.csv result file. Write rows with
// encoding/csv and UseCRLF set: RFC 4180, UTF-8.
type CSVRow struct {
	Line      int    // the recipient's line in the drop file
	Message   int    // 1-based message index
	Input     string // the number as written
	Recipient string // E.164, empty when invalid
	MessageID string // smsdrop's message id, empty before hand-over
	Status    Status
	Code      string
	Segments  int
	Encoding  Encoding
	Updated   time.Time // last status change; written RFC 3339 in UTC, empty when zero
	Reply     string    // the recipient's reply, for status rep
}

// Record returns the row's fields in CSVHeader's order.
func (r CSVRow) Record() []string {
	updated := ""
	if !r.Updated.IsZero() {
		updated = r.Updated.UTC().Format(time.RFC3339)
	}
	return []string{
		strconv.Itoa(r.Line),
		strconv.Itoa(r.Message),
		r.Input,
		r.Recipient,
		r.MessageID,
		string(r.Status),
		r.Code,
		strconv.Itoa(r.Segments),
		string(r.Encoding),
		updated,
		r.Reply,
	}
}

// CSVRow returns the row the recipient has straight after validation: wait
// or ko, no message id, no update time. It is what check -v prints.
func (r *Recipient) CSVRow() CSVRow {
	return CSVRow{
		Line:      r.Line,
		Message:   r.Message,
		Input:     r.Input,
		Recipient: r.Number,
		Status:    r.Status,
		Code:      r.Code,
		Segments:  r.Segments,
		Encoding:  r.Encoding,
	}
}
