package batch

import (
	"bytes"
	"encoding/csv"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCSVGolden writes a results CSV as the server does (RFC 4180, CRLF)
// with every column in use, including values that need quoting.
func TestCSVGolden(t *testing.T) {
	b, err := Parse(strings.NewReader("U-DEMO\nT-Hi #1#\n#-07400123456;Ann\n#-07400 123457;Bob\n#-12,34\n#-\"+44\" 7400123458\n"), testSettings())
	if err != nil {
		t.Fatal(err)
	}
	rows := []CSVRow{b.Recipients[0].CSVRow(), b.Recipients[1].CSVRow(), b.Recipients[2].CSVRow(), b.Recipients[3].CSVRow()}
	rows[0].MessageID, rows[0].Status, rows[0].Updated = "42-3", StatusOK, time.Date(2026, 11, 23, 11, 0, 0, 0, time.FixedZone("", 3600))
	rows[1].MessageID, rows[1].Status, rows[1].Reply = "42-4", StatusRep, "Yes, \"see\" you\nsoon"
	rows[1].Updated = time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC)
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.UseCRLF = true
	w.Write(CSVHeader)
	for _, r := range rows {
		w.Write(r.Record())
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	compareGolden(t, "results.csv.golden", buf.Bytes())
}

// TestRecipientCSVRow: what check -v prints for a recipient.
func TestRecipientCSVRow(t *testing.T) {
	r := Recipient{Line: 4, Message: 2, Input: "07400 123456", Number: "+447400123456", Text: "x",
		Encoding: EncodingUCS2, Segments: 3, Status: StatusKO, Code: CodeDuplicate}
	want := []string{"4", "2", "07400 123456", "+447400123456", "", "ko", "DUPLICATE", "3", "ucs2", "", ""}
	if got := r.CSVRow().Record(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if len(CSVHeader) != len(want) {
		t.Errorf("header has %d columns, rows %d", len(CSVHeader), len(want))
	}
}
