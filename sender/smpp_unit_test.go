package sender

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"smsdrop/batch"
)

func TestNewSMPPOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    SMPPOptions
		wantErr string
	}{
		{"defaults", SMPPOptions{Addr: "127.0.0.1:2775", SystemID: "id"}, ""},
		{"no address", SMPPOptions{SystemID: "id"}, "address"},
		{"no system_id", SMPPOptions{Addr: "127.0.0.1:2775"}, "system_id"},
		{"negative window", SMPPOptions{Addr: "127.0.0.1:2775", SystemID: "id", Window: -1}, "window"},
		{"negative enquire_link", SMPPOptions{Addr: "127.0.0.1:2775", SystemID: "id", EnquireLink: -time.Second}, "enquire_link"},
		{"negative bind timeout", SMPPOptions{Addr: "127.0.0.1:2775", SystemID: "id", BindTimeout: -time.Second}, "bind timeout"},
		{"sender name too long", SMPPOptions{Addr: "127.0.0.1:2775", SystemID: "id", SourceAddr: "TwelveLetter"}, "11 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSMPP(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.window != DefaultSMPPWindow || s.enquireLink != DefaultSMPPEnquireLink || s.bindTimeout != DefaultSMPPBindTimeout {
				t.Errorf("defaults: window %d, enquire_link %v, bind timeout %v", s.window, s.enquireLink, s.bindTimeout)
			}
		})
	}
}

func TestSMPPAddresses(t *testing.T) {
	tests := []struct {
		in           string
		dest         bool
		ton, npi     byte
		addr, errSub string
	}{
		{in: "Shop", ton: 5, npi: 0, addr: "Shop"},
		{in: "+447700900123", ton: 1, npi: 1, addr: "447700900123"},
		{in: "447700900123", ton: 1, npi: 1, addr: "447700900123"},
		{in: "", ton: 0, npi: 0, addr: ""},
		{in: "Much Too Long", errSub: "11 characters"},
		{in: "+447700900123", dest: true, ton: 1, npi: 1, addr: "447700900123"},
		{in: "Shop", dest: true, errSub: "not an international number"},
		{in: "", dest: true, errSub: "not an international number"},
	}
	for _, tc := range tests {
		a, err := sourceAddress(tc.in)
		if tc.dest {
			a, err = destAddress(tc.in)
		}
		if tc.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("%q (dest %v): error %v, want %q", tc.in, tc.dest, err, tc.errSub)
			}
			continue
		}
		if err != nil || a.Ton() != tc.ton || a.Npi() != tc.npi || a.Address() != tc.addr {
			t.Errorf("%q (dest %v) = %d/%d %q, %v; want %d/%d %q", tc.in, tc.dest, a.Ton(), a.Npi(), a.Address(), err, tc.ton, tc.npi, tc.addr)
		}
	}
}

func TestSMPPResultMapping(t *testing.T) {
	ok := func(id string) partOutcome { return partOutcome{kind: partAccepted, id: id} }
	refused := func(st data.CommandStatusType) partOutcome { return partOutcome{kind: partRefused, status: st} }
	lost := partOutcome{kind: partNotSent, err: errors.New("connection lost")}
	unconfirmed := partOutcome{kind: partUnconfirmed, err: errors.New("connection lost")}
	tests := []struct {
		name  string
		parts []partOutcome
		ids   []string
		code  string
		temp  bool
	}{
		{"all accepted", []partOutcome{ok("a"), ok("b")}, []string{"a", "b"}, "", false},
		{"throttled", []partOutcome{refused(data.ESME_RTHROTTLED)}, nil, CodeThrottled, true},
		{"queue full", []partOutcome{refused(data.ESME_RMSGQFUL)}, nil, CodeQueueFull, true},
		{"never written", []partOutcome{lost, lost}, nil, CodeConnectionLost, true},
		{"throttled and never written", []partOutcome{refused(data.ESME_RTHROTTLED), lost}, nil, CodeThrottled, true},
		{"refused", []partOutcome{refused(data.ESME_RINVDSTADR)}, nil, "REJECTED:0x0000000B", false},
		{"written, no answer", []partOutcome{unconfirmed}, nil, batch.CodeUnconfirmed, false},
		{"no answer and never written", []partOutcome{unconfirmed, lost}, nil, batch.CodeUnconfirmed, false},
		{"accepted then refused", []partOutcome{ok("a"), refused(data.ESME_RINVDSTADR)}, nil, "REJECTED:0x0000000B", false},
		{"refused wins over unconfirmed", []partOutcome{unconfirmed, refused(data.ESME_RINVDSTADR)}, nil, "REJECTED:0x0000000B", false},
		// The SMSC's own temporary failures are retried, not ko at once.
		{"temporary application error", []partOutcome{refused(data.ESME_RX_T_APPN)}, nil, CodeSMSCError, true},
		{"system error", []partOutcome{refused(data.ESME_RSYSERR)}, nil, CodeSMSCError, true},
		{"accepted then no answer", []partOutcome{ok("a"), unconfirmed}, nil, batch.CodeUnconfirmed, false},
		{"accepted, the rest never handed over", []partOutcome{ok("a"), lost}, nil, CodeIncomplete, false},
		{"accepted, the rest still throttled", []partOutcome{ok("a"), refused(data.ESME_RTHROTTLED)}, nil, CodeIncomplete, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			call := &smppCall{msgs: []Message{{ID: "1-1"}}, first: []int{0}}
			for i, o := range tc.parts {
				o.idx = i
				call.parts = append(call.parts, smppPart{msg: 0, seq: i + 1, out: o})
			}
			r := call.result(0)
			code, temp := errCode(r.Err)
			if code != tc.code || temp != tc.temp || strings.Join(r.PartIDs, ",") != strings.Join(tc.ids, ",") {
				t.Errorf("result %v %v (code %q temporary %v), want %v code %q temporary %v", r.PartIDs, r.Err, code, temp, tc.ids, tc.code, tc.temp)
			}
			if tc.code != "" && tc.code != CodeIncomplete && len(call.incomplete()) > 0 {
				t.Errorf("parts %v would be submitted again", call.incomplete())
			}
			if tc.code == CodeIncomplete && len(call.incomplete()) != 1 {
				t.Errorf("parts to submit again %v, want the one not accepted", call.incomplete())
			}
		})
	}
}

func TestIDIndex(t *testing.T) {
	x := newIDIndex(3)
	for _, id := range []string{"0000A1F2", "abc-77", "12345"} {
		x.add(id)
	}
	tests := []struct{ receipt, want string }{
		{"0000A1F2", "0000A1F2"}, // as given
		{"0000a1f2", "0000A1F2"}, // case
		{"A1F2", "0000A1F2"},     // hex without padding
		{"41458", "0000A1F2"},    // decimal for hex
		{"ABC-77", "abc-77"},     // case of a non-numeric id
		{"012345", "12345"},      // decimal with padding
		{"3039", "12345"},        // hex for decimal
		{"999", "999"},           // unknown: as written
	}
	for _, tc := range tests {
		if got := x.resolve(tc.receipt, true); got != tc.want {
			t.Errorf("resolve(%q) = %q, want %q", tc.receipt, got, tc.want)
		}
	}
	// The index is bounded: the oldest id goes first.
	x.add("ZZ")
	if got := x.resolve("41458", true); got != "41458" {
		t.Errorf("an evicted id still resolves: %q", got)
	}
	if got := x.resolve("zz", true); got != "ZZ" {
		t.Errorf("resolve(zz) = %q", got)
	}
}

// An SMSC that gives hex ids and writes the receipt text's id in decimal
// (Kannel's msg-id-type 0x01): a decimal "10" is 0x0A, not the id
// "00000010", which also reads as decimal 10. The receipted_message_id TLV
// writes ids as submit_sm_resp did, so there "10" stays 0x10.
func TestIDIndexHexThenDecimal(t *testing.T) {
	x := newIDIndex(100)
	for i := 1; i <= 16; i++ {
		x.add(fmt.Sprintf("%08X", i))
	}
	for _, tc := range []struct {
		receipt  string
		fromText bool
		want     string
	}{
		{"10", true, "0000000A"},
		{"16", true, "00000010"},
		{"10", false, "00000010"},
		{"00000010", true, "00000010"}, // as given wins
		{"A", true, "0000000A"},
	} {
		if got := x.resolve(tc.receipt, tc.fromText); got != tc.want {
			t.Errorf("resolve(%q, text %v) = %q, want %q", tc.receipt, tc.fromText, got, tc.want)
		}
	}
}

func TestReceiptOutcome(t *testing.T) {
	tests := []struct {
		stat   string
		status batch.Status
		code   string
		final  bool
	}{
		{"DELIVRD", batch.StatusOK, "", true},
		{"delivrd", batch.StatusOK, "", true},
		{"UNDELIV", batch.StatusKO, batch.CodeUndelivered, true},
		{"REJECTD", batch.StatusKO, batch.CodeRejected, true},
		{"DELETED", batch.StatusKO, batch.CodeUndelivered, true},
		{"EXPIRED", batch.StatusKO, batch.CodeExpired, true},
		{"UNKNOWN", batch.StatusNo, codeUnknown, true},
		{"ACCEPTD", "", "", false},
		{"ENROUTE", "", "", false},
		{"", batch.StatusNo, codeUnknown, true},
		{"WHATEVER", batch.StatusNo, codeUnknown, true},
	}
	for _, tc := range tests {
		status, code, final := receiptOutcome(tc.stat)
		if status != tc.status || code != tc.code || final != tc.final {
			t.Errorf("%q = %q %q %v, want %q %q %v", tc.stat, status, code, final, tc.status, tc.code, tc.final)
		}
	}
}

func TestMOAssembler(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	k := moKey{from: "447700900123", to: "Shop", ref: 7, total: 2}
	gsm := int(data.GSM7BITCoding)
	tests := []struct {
		name string
		run  func(a *moAssembler) (text string, groups int)
		text string
		left int
	}{
		{"parts in any order", func(a *moAssembler) (string, int) {
			a.add(t0, k, 2, gsm, []byte("b"))
			g := a.add(t0, k, 1, gsm, []byte("a"))
			return g.text(), len(a.groups)
		}, "ab", 1},
		{"a duplicate part does not complete twice", func(a *moAssembler) (string, int) {
			a.add(t0, k, 1, gsm, []byte("a"))
			g := a.add(t0, k, 2, gsm, []byte("b"))
			if a.add(t0, k, 2, gsm, []byte("b")) != nil {
				return "completed twice", 0
			}
			a.forget(k)
			return g.text(), len(a.groups)
		}, "ab", 0},
		{"reopened after a failed store, the redelivered part completes again", func(a *moAssembler) (string, int) {
			a.add(t0, k, 1, gsm, []byte("a"))
			a.add(t0, k, 2, gsm, []byte("b"))
			a.reopen(k, 2)
			g := a.add(t0, k, 2, gsm, []byte("B"))
			if g == nil {
				return "not completed", 0
			}
			return g.text(), len(a.groups)
		}, "aB", 1},
		{"expired after the timeout", func(a *moAssembler) (string, int) {
			a.add(t0, k, 1, gsm, []byte("a"))
			if at, ok := a.next(); !ok || !at.Equal(t0.Add(time.Minute)) {
				return "next " + at.String(), 0
			}
			if n := a.expire(t0.Add(time.Minute - time.Second)); n != 0 {
				return "expired early", 0
			}
			n := a.expire(t0.Add(time.Minute))
			return strings.Repeat("x", n), len(a.groups)
		}, "x", 0},
		{"a part out of range is dropped", func(a *moAssembler) (string, int) {
			if a.add(t0, k, 3, gsm, []byte("c")) != nil || a.add(t0, k, 0, gsm, nil) != nil {
				return "accepted", 0
			}
			return "", len(a.groups)
		}, "", 0},
		{"the oldest group goes when too many", func(a *moAssembler) (string, int) {
			for i := range 3 {
				a.add(t0.Add(time.Duration(i)*time.Second), moKey{from: "1", ref: uint16(i), total: 2}, 1, gsm, []byte("a"))
			}
			_, oldest := a.groups[moKey{from: "1", ref: 0, total: 2}]
			if oldest {
				return "oldest kept", 0
			}
			return "", len(a.groups)
		}, "", 2},
		{"mixed codings decode part by part", func(a *moAssembler) (string, int) {
			a.add(t0, k, 1, gsm, batch.Split("é", batch.EncodingGSM)[0])
			g := a.add(t0, k, 2, int(data.UCS2Coding), []byte{0x04, 0x1F})
			return g.text(), len(a.groups)
		}, "éП", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text, left := tc.run(newMOAssembler(time.Minute, 2))
			if text != tc.text || left != tc.left {
				t.Errorf("got %q with %d groups left, want %q with %d", text, left, tc.text, tc.left)
			}
		})
	}
}

func TestDecodeSMS(t *testing.T) {
	tests := []struct {
		coding int
		in     []byte
		want   string
	}{
		{int(data.GSM7BITCoding), []byte{0x48, 0x69, 0x00, 0x1B, 0x65}, "Hi@€"},
		{int(data.UCS2Coding), []byte{0xD8, 0x3D, 0xDC, 0x4B, 0x00, 0x21}, "👋!"},
		{int(data.LATIN1Coding), []byte{0xE7, 0x61}, "ça"},
		{int(data.ASCIICoding), []byte("plain"), "plain"},
		{int(data.BINARY8BIT2Coding), []byte{0x01, 0xFF}, "\x01ÿ"},
		{-1, []byte{0xE9}, "é"},
	}
	for _, tc := range tests {
		if got := decodeSMS(tc.coding, tc.in); got != tc.want {
			t.Errorf("decodeSMS(%d, %x) = %q, want %q", tc.coding, tc.in, got, tc.want)
		}
	}
}

func TestConcatInfo(t *testing.T) {
	tests := []struct {
		name         string
		udh          pdu.UDH
		tlvs         map[pdu.Tag]pdu.Field
		ref          uint16
		total, seq   int
		concatenated bool
	}{
		{"8-bit reference", pdu.UDH{{ID: 0x00, Data: []byte{0x7F, 2, 1}}}, nil, 0x7F, 2, 1, true},
		{"16-bit reference", pdu.UDH{{ID: 0x08, Data: []byte{0x12, 0x34, 3, 2}}}, nil, 0x1234, 3, 2, true},
		{"sar TLVs", nil, map[pdu.Tag]pdu.Field{
			tagSarMsgRefNum:     {Tag: tagSarMsgRefNum, Data: []byte{0x02, 0x01}},
			tagSarTotalSegments: {Tag: tagSarTotalSegments, Data: []byte{2}},
			tagSarSegmentSeqnum: {Tag: tagSarSegmentSeqnum, Data: []byte{2}},
		}, 0x0201, 2, 2, true},
		{"other UDH only", pdu.UDH{{ID: 0x05, Data: []byte{0, 1, 0, 2}}}, nil, 0, 0, 0, false},
		{"none", nil, nil, 0, 0, 0, false},
	}
	for _, tc := range tests {
		ref, total, seq, ok := concatInfo(tc.udh, tc.tlvs)
		if ref != tc.ref || total != tc.total || seq != tc.seq || ok != tc.concatenated {
			t.Errorf("%s: %d %d/%d %v", tc.name, ref, seq, total, ok)
		}
	}
}
