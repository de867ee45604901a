package sender

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp"
	"github.com/linxGnu/gosmpp/data"

	"smsdrop/batch"
	"smsdrop/clock"
)

func gsmMessage(id, to, text string) Message {
	return Message{ID: id, To: to, Text: text, Encoding: batch.EncodingGSM, Segments: batch.CountParts(text, batch.EncodingGSM)}
}

func ucs2Message(id, to, text string) Message {
	return Message{ID: id, To: to, Text: text, Encoding: batch.EncodingUCS2, Segments: batch.CountParts(text, batch.EncodingUCS2)}
}

// sendOK sends msgs and fails the test unless every one was accepted.
func sendOK(t *testing.T, s *SMPP, msgs ...Message) []Result {
	t.Helper()
	res := s.Send(context.Background(), msgs)
	if len(res) != len(msgs) {
		t.Fatalf("Send returned %d results for %d messages", len(res), len(msgs))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("message %s: %v", msgs[i].ID, r.Err)
		}
	}
	return res
}

// errCode returns the *Error code and temporariness of err.
func errCode(err error) (string, bool) {
	var se *Error
	if errors.As(err, &se) {
		return se.Code, se.Temporary
	}
	return "", false
}

func TestSMPPBindFailure(t *testing.T) {
	m := startSMSC(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name     string
		addr     string
		systemID string
		password string
		status   data.CommandStatusType // 0: not an SMPP refusal
		want     string
	}{
		{"wrong password", m.addr, "smsdrop", "wrong", data.ESME_RINVPASWD, "ESME_RINVPASWD"},
		{"unknown system_id", m.addr, "nobody", "secret", data.ESME_RINVSYSID, "ESME_RINVSYSID"},
		{"nothing listening", closedAddr, "smsdrop", "secret", 0, "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSMPP(SMPPOptions{Addr: tc.addr, SystemID: tc.systemID, Password: tc.password, BindTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Connect(context.Background())
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			t.Logf("Connect: %v", err)
			if !strings.Contains(err.Error(), tc.addr) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s and %s", err, tc.addr, tc.want)
			}
			var be gosmpp.BindError
			if got := errors.As(err, &be); got != (tc.status != 0) || be.CommandStatus != tc.status {
				t.Errorf("errors.As BindError = %v, status %v; want status %v", got, be.CommandStatus, tc.status)
			}
			// Unbound, Send fails at once with a retryable error that says why.
			start := time.Now()
			res := s.Send(context.Background(), []Message{gsmMessage("1-2", "+447700900001", "hi")})
			code, temp := errCode(res[0].Err)
			if code != CodeConnectionLost || !temp || !strings.Contains(res[0].Err.Error(), tc.want) {
				t.Errorf("Send while unbound: %v (code %q, temporary %v)", res[0].Err, code, temp)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("Send while unbound took %v", took)
			}
		})
	}
}

func TestSMPPSubmit(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, func(o *SMPPOptions) { o.SourceAddr = "+447700900999" })
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 200)
	brace := strings.Repeat("a", 152) + "{" + strings.Repeat("b", 10)
	ucs := "Привет 👋 ça va?"
	tests := []struct {
		name    string
		msg     Message
		coding  int
		parts   []string // payload after the UDH, hex
		srcTON  int
		srcNPI  int
		srcAddr string
		septets []int // part sizes in septets (GSM)
	}{
		{
			name:   "single GSM",
			msg:    gsmMessage("1-1", "+447700900001", "Hi@{£"),
			coding: 0,
			// H i @ ESC ( £: the unpacked septets, one byte each.
			parts:  []string{"486900" + "1b28" + "01"},
			srcTON: 1, srcNPI: 1, srcAddr: "447700900999",
		},
		{
			name:    "long GSM",
			msg:     func() Message { m := gsmMessage("1-2", "+447700900002", long); m.From = "Shop"; return m }(),
			coding:  0,
			parts:   hexParts(batch.Split(long, batch.EncodingGSM)),
			septets: []int{153, 47},
			srcTON:  5, srcNPI: 0, srcAddr: "Shop",
		},
		{
			name:    "escape pair at the part boundary",
			msg:     gsmMessage("1-3", "+447700900003", brace),
			coding:  0,
			parts:   []string{strings.Repeat("61", 152), "1b28" + strings.Repeat("62", 10)},
			septets: []int{152, 12},
			srcTON:  1, srcNPI: 1, srcAddr: "447700900999",
		},
		{
			name:   "UCS-2",
			msg:    func() Message { m := ucs2Message("1-4", "+33612345678", ucs); m.From = "+33700000000"; return m }(),
			coding: 8,
			// П р и в е т, space, 👋 as a surrogate pair, space, ç a space v a ?
			parts: []string{"041f04400438043204350442" + "0020" + "d83ddc4b" + "0020" +
				"00e7" + "0061" + "0020" + "0076" + "0061" + "003f"},
			srcTON: 1, srcNPI: 1, srcAddr: "33700000000",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(m.pdus("submit_sm"))
			res := sendOK(t, s, tc.msg)
			subs := m.waitPDUs("submit_sm", before+len(tc.parts))[before:]
			if len(subs) != len(tc.parts) {
				t.Fatalf("%d submit_sm, want %d", len(subs), len(tc.parts))
			}
			if len(res[0].PartIDs) != len(subs) {
				t.Fatalf("PartIDs %v for %d parts", res[0].PartIDs, len(subs))
			}
			var ref string
			for i, r := range subs {
				sm, err := hex.DecodeString(r.ShortMessage)
				if err != nil {
					t.Fatal(err)
				}
				if r.DataCoding != tc.coding || r.RegisteredDelivery != 1 {
					t.Errorf("part %d: data_coding %d registered_delivery %d", i+1, r.DataCoding, r.RegisteredDelivery)
				}
				if r.DestAddrTON != 1 || r.DestAddrNPI != 1 || r.DestinationAddr != strings.TrimPrefix(tc.msg.To, "+") {
					t.Errorf("part %d: destination %d/%d %q", i+1, r.DestAddrTON, r.DestAddrNPI, r.DestinationAddr)
				}
				if r.SourceAddrTON != tc.srcTON || r.SourceAddrNPI != tc.srcNPI || r.SourceAddr != tc.srcAddr {
					t.Errorf("part %d: source %d/%d %q, want %d/%d %q", i+1, r.SourceAddrTON, r.SourceAddrNPI, r.SourceAddr, tc.srcTON, tc.srcNPI, tc.srcAddr)
				}
				if res[0].PartIDs[i] != r.MessageID {
					t.Errorf("part %d: PartID %q, SMSC gave %q", i+1, res[0].PartIDs[i], r.MessageID)
				}
				payload := sm
				if len(tc.parts) > 1 {
					if r.EsmClass != 0x40 {
						t.Errorf("part %d: esm_class 0x%02X, want 0x40", i+1, r.EsmClass)
					}
					if len(sm) < 6 || !strings.HasPrefix(r.ShortMessage, "050003") || sm[4] != byte(len(tc.parts)) || sm[5] != byte(i+1) {
						t.Fatalf("part %d: UDH %x, want 05 00 03 ref %02x %02x", i+1, sm[:min(6, len(sm))], len(tc.parts), i+1)
					}
					if i == 0 {
						ref = r.ShortMessage[6:8]
					} else if r.ShortMessage[6:8] != ref {
						t.Errorf("part %d: reference %s, part 1 had %s", i+1, r.ShortMessage[6:8], ref)
					}
					payload = sm[6:]
				} else if r.EsmClass != 0 {
					t.Errorf("esm_class 0x%02X, want 0", r.EsmClass)
				}
				if got := hex.EncodeToString(payload); got != tc.parts[i] {
					t.Errorf("part %d on the wire:\n got %s\nwant %s", i+1, got, tc.parts[i])
				}
				if tc.septets != nil && len(payload) != tc.septets[i] {
					t.Errorf("part %d: %d septets, want %d", i+1, len(payload), tc.septets[i])
				}
				if tc.coding == 0 && payload[len(payload)-1] == 0x1B {
					t.Errorf("part %d ends with a lone escape", i+1)
				}
			}
		})
	}
	seqs := map[uint32]bool{}
	for _, r := range m.pdus("submit_sm") {
		if seqs[r.SequenceNumber] {
			t.Errorf("sequence number %d used twice", r.SequenceNumber)
		}
		seqs[r.SequenceNumber] = true
	}
}

func hexParts(parts [][]byte) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = hex.EncodeToString(p)
	}
	return out
}

func TestSMPPReceipts(t *testing.T) {
	m := startSMSC(t, "--ids", "hex")
	s := newTestSMPP(t, m, nil)
	var log eventLog
	run(t, s, log.handle)
	dec := func(id string) string {
		v, err := strconv.ParseUint(id, 16, 64)
		if err != nil {
			t.Fatalf("SMSC id %q is not hex", id)
		}
		return strconv.FormatUint(v, 10)
	}
	tests := []struct {
		name    string
		receipt func(id string) map[string]any // id as submit_sm_resp gave it
		status  batch.Status                   // "" when no event is due
		code    string
	}{
		{"DELIVRD in the text", func(id string) map[string]any {
			return map[string]any{"id": id, "stat": "DELIVRD"}
		}, batch.StatusOK, ""},
		{"UNDELIV, the text's id in decimal", func(id string) map[string]any {
			return map[string]any{"id": dec(id), "stat": "UNDELIV", "err": "001"}
		}, batch.StatusKO, batch.CodeUndelivered},
		{"EXPIRED by TLVs alone", func(id string) map[string]any {
			return map[string]any{"text": false, "tlv_id": id, "state": 3}
		}, batch.StatusKO, batch.CodeExpired},
		{"message_state wins over stat, id in lower case", func(id string) map[string]any {
			return map[string]any{"id": strings.ToLower("X" + id)[1:], "stat": "DELIVRD", "state": 5}
		}, batch.StatusKO, batch.CodeUndelivered},
		{"REJECTD, receipted_message_id in decimal wins over the text", func(id string) map[string]any {
			return map[string]any{"id": "ffff", "tlv_id": dec(id), "stat": "REJECTD"}
		}, batch.StatusKO, batch.CodeRejected},
		{"DELETED", func(id string) map[string]any {
			return map[string]any{"id": id, "stat": "DELETED"}
		}, batch.StatusKO, batch.CodeUndelivered},
		{"UNKNOWN", func(id string) map[string]any {
			return map[string]any{"id": id, "stat": "UNKNOWN"}
		}, batch.StatusNo, codeUnknown},
		{"ACCEPTD is not final", func(id string) map[string]any {
			return map[string]any{"id": id, "stat": "ACCEPTD"}
		}, "", ""},
		{"ENROUTE by message_state is not final", func(id string) map[string]any {
			return map[string]any{"text": false, "tlv_id": id, "state": 1}
		}, "", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := sendOK(t, s, gsmMessage(fmt.Sprintf("1-%d", i), "+447700900001", "receipt "+tc.name))
			id := res[0].PartIDs[0]
			if len(id) != 8 {
				t.Fatalf("SMSC in hex mode gave id %q", id)
			}
			before := len(log.snapshot())
			cmd := tc.receipt(id)
			cmd["cmd"] = "receipt"
			ack := m.do(cmd)
			want := Event{Kind: Receipt, PartID: id, Status: tc.status, Code: tc.code}
			if tc.status == "" {
				// An event would come before this one's: Run keeps order.
				m.do(map[string]any{"cmd": "receipt", "id": id, "stat": "DELIVRD"})
				want.Status = batch.StatusOK
			}
			evs := log.waitEvents(t, before+1)
			got := evs[before]
			if got.At.IsZero() {
				t.Error("event without a time")
			}
			got.At = time.Time{}
			if got != want {
				t.Errorf("event %+v, want %+v", got, want)
			}
			r := m.waitRecord("deliver_sm_resp", func(r smscRecord) bool {
				return r.Command == "deliver_sm_resp" && r.SequenceNumber == ack.SequenceNumber
			})
			if r.CommandStatus != 0 {
				t.Errorf("deliver_sm_resp status 0x%X", r.CommandStatus)
			}
		})
	}
	if evs := log.snapshot(); len(evs) != len(tests) { // one per final receipt, one per marker
		t.Errorf("%d events, want %d", len(evs), len(tests))
	}
}

func TestSMPPAnswersAfterHandler(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, nil)
	entered := make(chan []Event)
	release := make(chan error)
	log := &eventLog{hook: func(_ int, evs []Event) error {
		entered <- evs
		return <-release
	}}
	run(t, s, log.handle)
	id := sendOK(t, s, gsmMessage("1-1", "+447700900001", "hello"))[0].PartIDs[0]
	tests := []struct {
		name   string
		result error
		status uint32
	}{
		{"handler fails: the SMSC is asked to retry", errors.New("store unavailable"), uint32(data.ESME_RX_T_APPN)},
		{"handler stores", nil, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ack := m.do(map[string]any{"cmd": "receipt", "id": id, "stat": "DELIVRD"})
			select {
			case evs := <-entered:
				if len(evs) != 1 || evs[0].PartID != id {
					t.Errorf("handler got %+v", evs)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the handler was not called")
			}
			// The handler holds the event. A submit_sm written now reaches
			// the SMSC after any answer written before it.
			n := len(m.pdus("submit_sm"))
			sendOK(t, s, gsmMessage(fmt.Sprintf("1-%d", i+2), "+447700900001", "barrier"))
			m.waitPDUs("submit_sm", n+1)
			isResp := func(r smscRecord) bool {
				return r.Command == "deliver_sm_resp" && r.SequenceNumber == ack.SequenceNumber
			}
			if early := m.records(isResp); len(early) > 0 {
				t.Fatalf("deliver_sm answered (0x%X) before the handler returned", early[0].CommandStatus)
			}
			release <- tc.result
			if r := m.waitRecord("deliver_sm_resp", isResp); r.CommandStatus != tc.status {
				t.Errorf("deliver_sm_resp status 0x%X, want 0x%X", r.CommandStatus, tc.status)
			}
		})
	}
	if evs := log.snapshot(); len(evs) != 1 {
		t.Errorf("stored events %+v, want the one the handler accepted", evs)
	}
}

// septetsHex is text's unpacked GSM septets in hex.
func septetsHex(text string) string {
	return hex.EncodeToString(bytes.Join(batch.Split(text, batch.EncodingGSM), nil))
}

func utf16Hex(text string) string {
	return hex.EncodeToString(bytes.Join(batch.Split(text, batch.EncodingUCS2), nil))
}

func TestSMPPReplies(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, nil)
	var log eventLog
	run(t, s, log.handle)
	mo := func(sm string, extra map[string]any) map[string]any {
		c := map[string]any{"cmd": "mo", "from": "447700900123", "to": "Shop", "short_message": sm}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	wave := utf16Hex("Salut 👋")
	tests := []struct {
		name string
		mos  []map[string]any
		from string
		text string
	}{
		{"GSM", []map[string]any{mo(septetsHex("Yes {please} @ 5€"), nil)}, "+447700900123", "Yes {please} @ 5€"},
		{"UCS-2", []map[string]any{mo(utf16Hex("Да, спасибо 👍"), map[string]any{"data_coding": 8})}, "+447700900123", "Да, спасибо 👍"},
		{"Latin-1", []map[string]any{mo(hex.EncodeToString([]byte("\xc7a co\xfbte 5 \xa3")), map[string]any{"data_coding": 3})}, "+447700900123", "Ça coûte 5 £"},
		{"ASCII", []map[string]any{mo(hex.EncodeToString([]byte("STOP_now")), map[string]any{"data_coding": 1})}, "+447700900123", "STOP_now"},
		{"national originator keeps its form", []map[string]any{mo(septetsHex("ok"), map[string]any{"from": "07700900123", "from_ton": 2})}, "07700900123", "ok"},
		// TON unknown: a trunk 0 is national (not "+0..."), a 00 prefix international.
		{"unknown TON, national form", []map[string]any{mo(septetsHex("ok"), map[string]any{"from": "07700900123", "from_ton": 0})}, "07700900123", "ok"},
		{"unknown TON, 00 prefix", []map[string]any{mo(septetsHex("ok"), map[string]any{"from": "00447700900123", "from_ton": 0})}, "+447700900123", "ok"},
		{"unknown TON, international digits", []map[string]any{mo(septetsHex("ok"), map[string]any{"from": "447700900123", "from_ton": 0})}, "+447700900123", "ok"},
		{"concatenated, 8-bit reference", []map[string]any{
			mo("0500037f0201"+septetsHex("Hello "), map[string]any{"esm_class": 0x40}),
			mo("0500037f0202"+septetsHex("world {x}"), map[string]any{"esm_class": 0x40}),
		}, "+447700900123", "Hello world {x}"},
		{"concatenated, 16-bit reference, out of order", []map[string]any{
			mo("06080412340303"+septetsHex("three"), map[string]any{"esm_class": 0x40}),
			mo("06080412340301"+septetsHex("one "), map[string]any{"esm_class": 0x40}),
			mo("06080412340302"+septetsHex("two "), map[string]any{"esm_class": 0x40}),
		}, "+447700900123", "one two three"},
		{"concatenated by sar TLVs, UCS-2 pair split between parts", []map[string]any{
			mo(wave[:len(wave)-4], map[string]any{"data_coding": 8, "sar": []int{513, 2, 1}}),
			mo(wave[len(wave)-4:], map[string]any{"data_coding": 8, "sar": []int{513, 2, 2}}),
		}, "+447700900123", "Salut 👋"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(log.snapshot())
			var seqs []uint32
			for _, c := range tc.mos {
				seqs = append(seqs, m.do(c).SequenceNumber)
			}
			got := log.waitEvents(t, before+1)[before]
			got.At = time.Time{}
			want := Event{Kind: Reply, From: tc.from, To: "Shop", Text: tc.text}
			if got != want {
				t.Errorf("event %+v, want %+v", got, want)
			}
			for _, seq := range seqs {
				r := m.waitRecord("deliver_sm_resp", func(r smscRecord) bool {
					return r.Command == "deliver_sm_resp" && r.SequenceNumber == seq
				})
				if r.CommandStatus != 0 {
					t.Errorf("deliver_sm %d answered 0x%X", seq, r.CommandStatus)
				}
			}
		})
	}
	if evs := log.snapshot(); len(evs) != len(tests) {
		t.Errorf("%d events, want one per reply (%d)", len(evs), len(tests))
	}
}

func TestSMPPRefusals(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, nil)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("0123456789", 20)
	tests := []struct {
		name     string
		statuses []data.CommandStatusType // the SMSC's next answers
		msg      Message
		attempts []string // code of each Send; "" = accepted
		temp     []bool
		submits  int // submit_sm the SMSC sees in all
	}{
		{"throttled three times, then accepted", []data.CommandStatusType{data.ESME_RTHROTTLED, data.ESME_RTHROTTLED, data.ESME_RTHROTTLED},
			gsmMessage("1-1", "+447700900001", "throttle me"), []string{CodeThrottled, CodeThrottled, CodeThrottled, ""}, []bool{true, true, true, false}, 4},
		{"queue full, then accepted", []data.CommandStatusType{data.ESME_RMSGQFUL},
			gsmMessage("1-2", "+447700900002", "queue"), []string{CodeQueueFull, ""}, []bool{true, false}, 2},
		{"invalid destination", []data.CommandStatusType{data.ESME_RINVDSTADR},
			gsmMessage("1-3", "+447700900003", "nowhere"), []string{"REJECTED:0x0000000B"}, []bool{false}, 1},
		{"second part throttled: the driver submits it again", []data.CommandStatusType{data.ESME_ROK, data.ESME_RTHROTTLED},
			gsmMessage("1-4", "+447700900004", long), []string{""}, []bool{false}, 3},
		{"second part refused for good", []data.CommandStatusType{data.ESME_ROK, data.ESME_RINVDSTADR},
			gsmMessage("1-5", "+447700900005", long), []string{"REJECTED:0x0000000B"}, []bool{false}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(m.pdus("submit_sm"))
			m.do(map[string]any{"cmd": "config", "statuses": tc.statuses})
			var last Result
			for i, want := range tc.attempts {
				last = s.Send(context.Background(), []Message{tc.msg})[0]
				code, temp := errCode(last.Err)
				if code != want || temp != tc.temp[i] || (last.Err != nil) != (want != "") {
					t.Fatalf("attempt %d: %v (code %q temporary %v), want code %q temporary %v", i+1, last.Err, code, temp, want, tc.temp[i])
				}
			}
			subs := m.waitPDUs("submit_sm", before+tc.submits)[before:]
			if len(subs) != tc.submits {
				t.Errorf("%d submit_sm, want %d", len(subs), tc.submits)
			}
			if last.Err == nil {
				var ids []string
				for _, r := range subs {
					if r.RespStatus == 0 {
						ids = append(ids, r.MessageID)
					}
				}
				if strings.Join(ids, ",") != strings.Join(last.PartIDs, ",") {
					t.Errorf("PartIDs %v, accepted by the SMSC %v", last.PartIDs, ids)
				}
			}
			if tc.submits == 3 && subs[1].ShortMessage != subs[2].ShortMessage {
				t.Errorf("the part submitted again differs:\n%s\n%s", subs[1].ShortMessage, subs[2].ShortMessage)
			}
		})
	}
}

func TestSMPPConnectionKilledMidBatch(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, func(o *SMPPOptions) { o.Window = 10 })
	run(t, s, (&eventLog{}).handle)
	// 15 are answered, the next 10 fill the window unanswered, the last 5
	// wait for a slot when the connection dies.
	m.do(map[string]any{"cmd": "config", "hold_after": 15})
	msgs := make([]Message, 30)
	for i := range msgs {
		msgs[i] = gsmMessage(fmt.Sprintf("7-%d", i), fmt.Sprintf("+4477009%05d", i), fmt.Sprintf("message %d", i))
	}
	done := make(chan []Result, 1)
	go func() { done <- s.Send(context.Background(), msgs) }()
	m.waitPDUs("submit_sm", 25)
	m.do(map[string]any{"cmd": "kill"})
	var res []Result
	select {
	case res = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Send did not return after the connection died")
	}
	var retry []Message
	for i, r := range res {
		code, temp := errCode(r.Err)
		switch {
		case i < 15:
			if r.Err != nil || len(r.PartIDs) != 1 {
				t.Errorf("message %d answered before the crash: %v", i, r.Err)
			}
		case i < 25:
			if code != batch.CodeUnconfirmed || temp {
				t.Errorf("message %d in flight at the crash: %v (code %q temporary %v), want permanent UNCONFIRMED", i, r.Err, code, temp)
			}
		default:
			if code != CodeConnectionLost || !temp {
				t.Errorf("message %d never written: %v (code %q temporary %v), want temporary CONNECTION_LOST", i, r.Err, code, temp)
			}
			retry = append(retry, msgs[i])
		}
	}
	m.do(map[string]any{"cmd": "config", "hold_after": nil})
	waitFor(t, "a new bind", func() bool { return len(m.pdus("bind_transceiver")) >= 2 && s.current() != nil })
	sendOK(t, s, retry...)
	seen := map[string]int{}
	for _, r := range m.waitPDUs("submit_sm", 30) {
		seen[r.DestinationAddr+"/"+r.ShortMessage]++
	}
	if len(seen) != 30 {
		t.Errorf("%d distinct messages at the SMSC, want 30", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s submitted %d times", k, n)
		}
	}
}

func TestSMPPWindowAndDeadline(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, func(o *SMPPOptions) { o.Window = 3 })
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.do(map[string]any{"cmd": "config", "hold_after": 0})
	msgs := make([]Message, 5)
	for i := range msgs {
		msgs[i] = gsmMessage(fmt.Sprintf("8-%d", i), "+447700900001", fmt.Sprintf("window %d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []Result, 1)
	go func() { done <- s.Send(ctx, msgs) }()
	m.waitPDUs("submit_sm", 3)
	cancel()
	res := <-done
	for i, r := range res {
		code, temp := errCode(r.Err)
		if wantTemp := i >= 3; temp != wantTemp || (i < 3 && code != batch.CodeUnconfirmed) || (i >= 3 && code != CodeConnectionLost) {
			t.Errorf("message %d: %v (code %q temporary %v)", i, r.Err, code, temp)
		}
	}
	// Whatever the driver wrote reached the SMSC before it saw the close.
	m.do(map[string]any{"cmd": "kill"})
	m.waitRecord("the connection to close", func(r smscRecord) bool { return r.Ev == "closed" })
	if n := len(m.pdus("submit_sm")); n != 3 {
		t.Errorf("%d submit_sm with a window of 3 and no answers, want 3", n)
	}
}

func TestSMPPEnquireLinkAndClose(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, func(o *SMPPOptions) { o.EnquireLink = 20 * time.Millisecond })
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.waitPDUs("enquire_link", 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m.waitPDUs("unbind", 1)
	res := s.Send(context.Background(), []Message{gsmMessage("1-1", "+447700900001", "after close")})
	if code, temp := errCode(res[0].Err); code != CodeConnectionLost || !temp {
		t.Errorf("Send after Close: %v", res[0].Err)
	}
}

// BenchmarkSMPPSubmit measures submit_sm per second to the local test SMSC.
func BenchmarkSMPPSubmit(b *testing.B) {
	for _, window := range []int{10, 50} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			m := startSMSC(b)
			s := newTestSMPP(b, m, func(o *SMPPOptions) { o.Window = window })
			if err := s.Connect(context.Background()); err != nil {
				b.Fatal(err)
			}
			const chunk = 1000
			msgs := make([]Message, chunk)
			for i := range msgs {
				msgs[i] = gsmMessage(fmt.Sprintf("9-%d", i), fmt.Sprintf("+4477009%05d", i), "benchmark message")
			}
			b.ResetTimer()
			start := time.Now()
			for sent := 0; sent < b.N; sent += chunk {
				for _, r := range s.Send(context.Background(), msgs[:min(chunk, b.N-sent)]) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "submit_sm/s")
		})
	}
}

func TestSMPPReconnectBackoff(t *testing.T) {
	m := startSMSC(t, "--password", "other")
	fake := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	s := newTestSMPP(t, m, func(o *SMPPOptions) { o.Clock = fake })
	s.backoffMin, s.backoffMax = time.Second, 4*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, (&eventLog{}).handle) }()
	defer func() {
		cancel()
		<-done
	}()
	binds := func() int { return len(m.pdus("bind_transceiver")) }
	// Run waits on one timer, its backoff, between two binds.
	waitFor(t, "the first refused bind", func() bool { return binds() == 1 && fake.Timers() == 1 })
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		waitFor(t, "Run to wait for its backoff", func() bool { return fake.Timers() == 1 })
		fake.Advance(wait - time.Millisecond)
		if fake.Timers() != 1 || binds() != i+1 {
			t.Fatalf("bind %d came before its backoff of %v", i+2, wait)
		}
		if i == 3 {
			m.do(map[string]any{"cmd": "config", "password": "secret"})
		}
		fake.Advance(time.Millisecond)
		waitFor(t, fmt.Sprintf("bind %d after %v", i+2, wait), func() bool { return binds() == i+2 })
	}
	waitFor(t, "the bind to succeed once the password is right", func() bool { return s.current() != nil })
}

func TestSMPPPartResubmittedAfterReconnect(t *testing.T) {
	m := startSMSC(t)
	fake := clock.NewFake(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	s := newTestSMPP(t, m, func(o *SMPPOptions) { o.Clock = fake })
	s.backoffMin, s.partRetryMin = time.Second, time.Second
	run(t, s, (&eventLog{}).handle)
	m.do(map[string]any{"cmd": "config", "statuses": []data.CommandStatusType{data.ESME_ROK, data.ESME_RTHROTTLED}})
	msg := gsmMessage("1-1", "+447700900001", strings.Repeat("x", 170))
	done := make(chan Result, 1)
	go func() { done <- s.Send(context.Background(), []Message{msg})[0] }()
	// Part 1 accepted, part 2 throttled: Send waits to submit part 2 again.
	m.waitPDUs("submit_sm", 2)
	waitFor(t, "Send to wait before submitting again", func() bool { return fake.Timers() == 1 })
	m.do(map[string]any{"cmd": "kill"})
	waitFor(t, "Run to wait before binding again", func() bool { return fake.Timers() == 2 })
	fake.Advance(time.Second)
	var r Result
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Send did not finish the message on the new connection")
	}
	// The SMSC's log of the third submit may trail its answer to us.
	subs := m.waitPDUs("submit_sm", 3)
	if r.Err != nil || len(subs) != 3 {
		t.Fatalf("result %v, %d submit_sm; want success with 3", r.Err, len(subs))
	}
	if subs[2].Conn == subs[1].Conn || subs[2].ShortMessage != subs[1].ShortMessage || subs[2].RespStatus != 0 {
		t.Errorf("part 2 again: conn %d (first on %d), same bytes %v, status 0x%X", subs[2].Conn, subs[1].Conn, subs[2].ShortMessage == subs[1].ShortMessage, subs[2].RespStatus)
	}
	if want := []string{subs[0].MessageID, subs[2].MessageID}; strings.Join(r.PartIDs, ",") != strings.Join(want, ",") {
		t.Errorf("PartIDs %v, want %v", r.PartIDs, want)
	}
}

// SME acknowledgements and intermediate notifications (esm_class message
// types 0x08, 0x10, 0x20) are acknowledged and dropped: only 0 is a reply.
// Before, any deliver_sm without the receipt bit was one, and an ENROUTE
// notification's text landed in replies/ and made its message "rep".
func TestSMPPNotificationsAreNoReplies(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, nil)
	var log eventLog
	run(t, s, log.handle)
	note := septetsHex("id:5 sub:001 dlvrd:000 submit date:2611231000 done date:2611231001 stat:ENROUTE err:000 text:")
	for _, esm := range []int{0x08, 0x10, 0x20} {
		m.do(map[string]any{"cmd": "mo", "from": "447700900123", "to": "Shop", "esm_class": esm, "short_message": note})
	}
	m.do(map[string]any{"cmd": "mo", "from": "447700900123", "to": "Shop", "short_message": septetsHex("Yes")})
	log.waitEvents(t, 1)
	time.Sleep(100 * time.Millisecond) // anything else the notifications gave shows by now
	evs := log.snapshot()
	if len(evs) != 1 || evs[0].Kind != Reply || evs[0].Text != "Yes" {
		t.Fatalf("events %+v, want only the reply Yes", evs)
	}
}

// Once the SMSC throttles, a long message not begun is held back whole
// (retried later, temporary), never begun by its later parts. Before, the
// guard looked only at first parts and was asked before the window slot
// freed by the throttle answer: with window 1 the next message was begun
// anyway and ended permanently ko INCOMPLETE, half delivered.
func TestSMPPThrottleHoldsUnbegunMessagesWhole(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, func(o *SMPPOptions) { o.Window = 1 })
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Message 1: part 1 accepted, part 2 throttled, then accepted again;
	// everything after is throttled.
	st := []data.CommandStatusType{data.ESME_ROK, data.ESME_RTHROTTLED, data.ESME_ROK}
	for range 200 {
		st = append(st, data.ESME_RTHROTTLED)
	}
	m.do(map[string]any{"cmd": "config", "statuses": st})
	long := strings.Repeat("0123456789", 20) // 2 parts
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := s.Send(ctx, []Message{
		gsmMessage("1-1", "+447700900001", long),
		gsmMessage("1-2", "+447700900002", long),
		gsmMessage("1-3", "+447700900003", long),
	})
	if res[0].Err != nil || len(res[0].PartIDs) != 2 {
		t.Errorf("message 1, begun before the throttle: %v %v, want both parts accepted", res[0].PartIDs, res[0].Err)
	}
	for i := 1; i < 3; i++ {
		if code, temp := errCode(res[i].Err); !temp || code != CodeThrottled {
			t.Errorf("message %d, not begun before the throttle: code %q temporary %v (%v), want THROTTLED, retried whole", i+1, code, temp, res[i].Err)
		}
	}
	// The SMSC logs in order: once it acknowledges a command, every
	// submit_sm before it is in the log.
	m.do(map[string]any{"cmd": "config", "statuses": []data.CommandStatusType{}})
	for _, r := range m.pdus("submit_sm") {
		if r.DestinationAddr != "447700900001" {
			t.Errorf("a part of a held message was submitted: to %s", r.DestinationAddr)
		}
	}
}

// Every part carries the batch's validity end as validity_period (SMPP
// absolute time, UTC), so the SMSC stops trying when smsdrop does; without
// a deadline the SMSC's default applies.
func TestSMPPValidityPeriod(t *testing.T) {
	m := startSMSC(t)
	s := newTestSMPP(t, m, nil)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Date(2026, 11, 24, 9, 30, 15, 0, time.FixedZone("CET", 3600))
	msg := gsmMessage("1-1", "+447700900001", strings.Repeat("0123456789", 20)) // 2 parts
	msg.Deadline = deadline
	sendOK(t, s, msg, gsmMessage("1-2", "+447700900002", "no deadline"))
	subs := m.waitPDUs("submit_sm", 3)
	if len(subs) != 3 {
		t.Fatalf("%d submit_sm, want 3", len(subs))
	}
	for i, r := range subs[:2] {
		got, err := time.Parse(time.RFC3339, r.ValidityPeriod)
		if err != nil || !got.Equal(deadline) {
			t.Errorf("part %d: validity_period %q (%v), want %s", i+1, r.ValidityPeriod, err, deadline.UTC().Format(time.RFC3339))
		}
	}
	if vp := subs[2].ValidityPeriod; vp != "" {
		t.Errorf("no deadline: validity_period %q, want none", vp)
	}
	if got := validityPeriod(deadline); got != "261124083015000+" {
		t.Errorf("validityPeriod = %q", got)
	}
}
