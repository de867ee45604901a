package batch

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Report is the content of a NAME.report file (SPEC §7) or of check's output.
type Report struct {
	Batch                          uint64    // omitted when 0
	File                           string    // the drop file's name
	Account                        string    // omitted when ""
	Received                       time.Time // omitted when zero; RFC 3339 as given (caller picks the zone)
	State                          string    // rejected, duplicate, scheduled, sending, done, cancelled; check uses valid/invalid
	Scheduled                      time.Time // omitted when zero
	Messages, Recipients, Segments int       // always written
	// Counts are the recipients by status: wait, on, ok, ko, rep, no in
	// that order. Nil leaves out the six lines and optout (check).
	Counts      *[6]int
	Optout      int    // written when Counts != nil
	DuplicateOf uint64 // omitted when 0
	// Errors and Warnings are written one "error: ..." or "warning: ..."
	// line each.
	Errors, Warnings []string
}

// WriteTo writes the report as "key: value" lines in SPEC §7's order,
// leaving out keys without a value. Control characters in a value (a file
// name with a line feed, say) are escaped as in Go strings, so every value
// stays on its one line and a reader of the file cannot be fooled.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	kv := func(key, value string) {
		bw.WriteString(key)
		bw.WriteString(": ")
		bw.WriteString(oneLine(value))
		bw.WriteByte('\n')
	}
	num := func(key string, n int) { kv(key, strconv.Itoa(n)) }
	if r.Batch != 0 {
		kv("batch", strconv.FormatUint(r.Batch, 10))
	}
	kv("file", r.File)
	if r.Account != "" {
		kv("account", r.Account)
	}
	if !r.Received.IsZero() {
		kv("received", r.Received.Format(time.RFC3339))
	}
	kv("state", r.State)
	if !r.Scheduled.IsZero() {
		kv("scheduled", r.Scheduled.Format(time.RFC3339))
	}
	num("messages", r.Messages)
	num("recipients", r.Recipients)
	num("segments", r.Segments)
	if r.Counts != nil {
		for i, s := range Statuses {
			num(string(s), r.Counts[i])
		}
		num("optout", r.Optout)
	}
	if r.DuplicateOf != 0 {
		kv("duplicate_of", strconv.FormatUint(r.DuplicateOf, 10))
	}
	for _, e := range r.Errors {
		kv("error", e)
	}
	for _, e := range r.Warnings {
		kv("warning", e)
	}
	err := bw.Flush()
	return cw.n, err
}

// countWriter counts the bytes written through it, for WriteTo's result.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// oneLine escapes the control characters of s (and a backslash, so that
// escapes stay unambiguous) when it has any; printable text is unchanged.
func oneLine(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) }

// ErrorStrings returns the errors as report values ("line 5: ...").
func (b *Batch) ErrorStrings() []string { return issueStrings(b.Errors) }

// WarningStrings returns the warnings as report values.
func (b *Batch) WarningStrings() []string { return issueStrings(b.Warnings) }

func issueStrings(is []Issue) []string {
	if len(is) == 0 {
		return nil
	}
	s := make([]string, len(is))
	for i, x := range is {
		s[i] = x.String()
	}
	return s
}
