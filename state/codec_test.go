package state

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"smsdrop/batch"
)

func TestMessageCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123, time.UTC)
	tests := []*Message{
		{},
		{Index: 2, Input: "07700 900123", Number: "+447700900123", Text: "Hello\nÀ bientôt 😀", Encoding: batch.EncodingUCS2,
			Segments: 2, Status: batch.StatusRep, Code: "", Parts: []Part{{ID: "a", Status: batch.StatusOK}, {ID: "b", Status: batch.StatusKO, Code: "UNDELIVERED"}},
			Handed: at, Updated: at.Add(time.Second), Reply: "STOP", Attempts: 3, NextTry: at.Add(time.Minute),
			History: []Change{{At: at, Status: batch.StatusWait}, {At: at, Status: batch.StatusOn, Code: "x"}}},
	}
	for _, m := range tests {
		var got Message
		b := encodeMsg(m)
		if err := decodeMsgInto(&got, b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, *m)
		}
		if st := msgStatus(b); st != m.Status {
			t.Errorf("msgStatus = %q, want %q", st, m.Status)
		}
		for i := range b { // truncated records are errors, never panics
			if err := decodeMsgInto(&Message{}, b[:i]); err == nil && i < len(b)-1 {
				t.Errorf("truncated at %d decoded without error", i)
			}
		}
	}
}

func TestBatchCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123, time.UTC)
	tests := []*Batch{
		{},
		{ID: 42, Account: "demo", Name: "sms ö.txt", Hash: "ab12", State: Sending, Received: at, SendAt: at.Add(time.Hour),
			Scheduled: true, Deadline: at.Add(25 * time.Hour), Folder: "archive", Moved: true, Messages: 3, Recipients: 8,
			Segments: 9, Counts: [6]int{1, 2, 3, 4, 5, 6}, Optout: 2, DuplicateOf: 17,
			Errors: []string{"line 5: D-: invalid date"}, Warnings: []string{"line 3: \"ô\" replaced by \"o\"", ""},
			Cursor: 12, Finished: at.Add(2 * time.Hour), ResultsFinal: true, SameNameBefore: 41, ResultsRev: 300},
	}
	for _, b := range tests {
		v := encodeBatch(b)
		var got Batch
		if err := decodeBatchInto(&got, v); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, b) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, *b)
		}
		for i := range v { // truncated records are errors, never panics
			if err := decodeBatchInto(&Batch{}, v[:i]); err == nil {
				t.Errorf("truncated at %d of %d decoded without error", i, len(v))
			}
		}
		// Version 2 records end before ResultsRev (a varint of 2 bytes
		// here, 1 for 0).
		v2 := append([]byte{batchVersionV2}, v[1:len(v)-uvarintLen(b.ResultsRev)]...)
		got = Batch{}
		if err := decodeBatchInto(&got, v2); err != nil {
			t.Fatalf("version 2 record: %v", err)
		}
		old := *b
		old.ResultsRev = 0
		if !reflect.DeepEqual(&got, &old) {
			t.Errorf("version 2 record:\n got %+v\nwant %+v", got, old)
		}
		// Stores written before the binary encoding hold JSON.
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got = Batch{}
		if err := decodeBatchInto(&got, j); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, b) {
			t.Errorf("JSON record:\n got %+v\nwant %+v", got, *b)
		}
	}
}

// Decoding never panics on damaged records, and what decodes encodes back
// to the same batch.
func FuzzDecodeBatch(f *testing.F) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Add(encodeBatch(&Batch{}))
	f.Add(encodeBatch(&Batch{ID: 7, Account: "demo", Name: "a.txt", State: Done, Received: at, Errors: []string{"e"},
		Warnings: []string{"w1", "w2"}, Counts: [6]int{1, 2, 3, 4, 5, 6}, SameNameBefore: 3}))
	f.Add([]byte(`{"id":1,"account":"demo"}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		var b Batch
		if err := decodeBatchInto(&b, v); err != nil || (len(v) > 0 && v[0] == '{') {
			return
		}
		var again Batch
		if err := decodeBatchInto(&again, encodeBatch(&b)); err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, b) {
			t.Fatalf("round trip changed the batch:\n got %+v\nwant %+v", again, b)
		}
	})
}

func uvarintLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }
