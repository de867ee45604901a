package state

import (
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
