package sender

import (
	"context"
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"smsdrop/batch"
)

// Limits of what the driver keeps in memory for incoming messages.
const (
	// smppInboxMax deliver_sm may wait for the event handler; beyond, the
	// SMSC is asked to retry.
	smppInboxMax = 10000
	// smppEventBatch deliver_sm at most go to the handler in one call.
	smppEventBatch = 500
	// smppIDIndexSize recent message ids are kept to match receipts that
	// write them differently.
	smppIDIndexSize = 100000
	// smppMOTimeout is how long the parts of a concatenated reply wait for
	// the others before they are dropped.
	smppMOTimeout = 10 * time.Minute
	// smppMOMaxGroups concatenated replies at most are being assembled.
	smppMOMaxGroups = 1000
)

// esmMessageType masks the message type bits of a deliver_sm's esm_class
// (SMPP 3.4 §5.2.12): 0 a short message (a reply), 0x04 an SMSC delivery
// receipt, 0x08 and 0x10 SME acknowledgements, 0x20 an intermediate
// delivery notification.
const esmMessageType = 0x3C

// codeUnknown explains a "no" receipt: the SMSC itself does not know.
const codeUnknown = "UNKNOWN"

// TLV tags the driver reads that gosmpp does not name.
const (
	tagSarMsgRefNum     pdu.Tag = 0x020C
	tagSarTotalSegments pdu.Tag = 0x020E
	tagSarSegmentSeqnum pdu.Tag = 0x020F
)

// smppInbound is a deliver_sm waiting for Run.
type smppInbound struct {
	c  *smppConn
	d  *pdu.DeliverSM
	at time.Time
}

// smppInbox queues deliver_sm from gosmpp's reader, which must not block,
// to Run.
type smppInbox struct {
	mu    sync.Mutex
	items []smppInbound
	max   int
	wake  chan struct{}
}

func newSMPPInbox(max int) *smppInbox {
	return &smppInbox{max: max, wake: make(chan struct{}, 1)}
}

// put queues it, or reports false when the inbox is full.
func (b *smppInbox) put(it smppInbound) bool {
	b.mu.Lock()
	if len(b.items) >= b.max {
		b.mu.Unlock()
		return false
	}
	b.items = append(b.items, it)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// take removes and returns up to n queued items.
func (b *smppInbox) take(n int) []smppInbound {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, len(b.items))
	out := make([]smppInbound, n)
	copy(out, b.items)
	clear(b.items[:n])
	b.items = b.items[n:]
	return out
}

// deliverLoop hands incoming messages to h, in batches, until ctx is done
// or the driver is closed.
func (s *SMPP) deliverLoop(ctx context.Context, h EventHandler) {
	mo := newMOAssembler(smppMOTimeout, smppMOMaxGroups)
	for {
		if n := mo.expire(s.clk.Now()); n > 0 {
			s.log.Warn("smpp: incomplete concatenated replies dropped", "count", n, "after", smppMOTimeout)
		}
		if items := s.inbox.take(smppEventBatch); len(items) > 0 {
			s.handle(ctx, h, mo, items)
			continue
		}
		var expiry <-chan time.Time
		var t interface{ Stop() bool }
		if at, ok := mo.next(); ok {
			tm := s.clk.NewTimer(max(at.Sub(s.clk.Now()), time.Millisecond))
			expiry, t = tm.C(), tm
		}
		select {
		case <-ctx.Done():
		case <-s.closeCh:
		case <-s.inbox.wake:
		case <-expiry:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil || s.isClosed() {
			return
		}
	}
}

// handle turns items into events, stores them through h and answers each
// deliver_sm: ESME_ROK once stored, ESME_RX_T_APPN when h failed, so that
// the SMSC delivers it again. A deliver_sm that yields no event (an
// intermediate receipt, one part of a concatenated reply, something
// unreadable) is answered ESME_ROK: nothing would come of a retry. The
// parts of a concatenated reply are thus acknowledged before the reply is
// stored, because many SMSCs send the next part only once the previous one
// is answered.
func (s *SMPP) handle(ctx context.Context, h EventHandler, mo *moAssembler, items []smppInbound) {
	events := make([]Event, 0, len(items))
	stored := make([]bool, len(items)) // whether item i gave an event
	var completed []moDone
	for i, it := range items {
		var ev Event
		var ok bool
		switch it.d.EsmClass & esmMessageType {
		case data.SM_SMSC_DLV_RCPT_TYPE:
			ev, ok = s.receipt(it)
		case 0:
			var done *moDone
			ev, ok, done = s.reply(it, mo)
			if done != nil {
				completed = append(completed, *done)
			}
		default:
			// SME acknowledgements and intermediate notifications: their
			// text is no reply, and they end no message.
			s.log.Debug("smpp: deliver_sm acknowledged and ignored", "esm_class", it.d.EsmClass)
		}
		if ok {
			events = append(events, ev)
			stored[i] = true
		}
	}
	var err error
	if len(events) > 0 {
		err = h(ctx, events)
	}
	for _, d := range completed {
		if err == nil {
			mo.forget(d.key)
		} else {
			// The last part will come again and complete the reply again.
			mo.reopen(d.key, d.seq)
		}
	}
	if err != nil {
		s.log.Warn("smpp: event handler failed, the SMSC will deliver again", "events", len(events), "err", err)
	}
	for i, it := range items {
		status := data.ESME_ROK
		if err != nil && stored[i] {
			status = data.ESME_RX_T_APPN
		}
		it.c.respond(it.d, status)
	}
}

// smsText returns a deliver_sm's user data without UDH, from short_message
// or, when that is empty, from the message_payload TLV.
func smsText(d *pdu.DeliverSM) (payload []byte, udh pdu.UDH) {
	payload, _ = d.Message.GetMessageData()
	udh = d.Message.UDH()
	if len(payload) > 0 || len(udh) > 0 {
		return payload, udh
	}
	f, ok := d.OptionalParameters[pdu.TagMessagePayload]
	if !ok {
		return nil, nil
	}
	payload = f.Data
	if d.EsmClass&data.SM_UDH_GSM != 0 && len(payload) > 0 {
		var u pdu.UDH
		if n, err := u.UnmarshalBinary(payload); err == nil && n <= len(payload) {
			return payload[n:], u
		}
	}
	return payload, nil
}

var (
	receiptIDRe   = regexp.MustCompile(`(?i)\bid:\s*(\S+)`)
	receiptStatRe = regexp.MustCompile(`(?i)\bstat:\s*([A-Za-z_]+)`)
)

// messageStates names the message_state TLV's values (SMPP 3.4 §5.2.28)
// as receipt texts write them.
var messageStates = map[byte]string{
	1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED",
	5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD",
}

// receipt reads a delivery receipt: the part's id from the
// receipted_message_id TLV, else the text's "id:"; its state from the
// message_state TLV, else the text's "stat:".
func (s *SMPP) receipt(it smppInbound) (Event, bool) {
	d := it.d
	payload, _ := smsText(d)
	text := string(payload) // receipt texts are ASCII; GSM decoding would turn '@' or '_' into other letters
	id, fromText := "", false
	if f, ok := d.OptionalParameters[pdu.TagReceiptedMessageID]; ok {
		id = strings.TrimSpace(f.String())
	}
	if id == "" {
		if m := receiptIDRe.FindStringSubmatch(text); m != nil {
			id, fromText = m[1], true
		}
	}
	stat := ""
	if m := receiptStatRe.FindStringSubmatch(text); m != nil {
		stat = m[1]
	}
	if f, ok := d.OptionalParameters[pdu.TagMessageStateOption]; ok && len(f.Data) == 1 {
		if name, ok := messageStates[f.Data[0]]; ok {
			stat = name
		}
	}
	if id == "" {
		s.log.Warn("smpp: receipt without a message id ignored", "conn", it.c.gen, "text", text)
		return Event{}, false
	}
	status, code, final := receiptOutcome(stat)
	if !final {
		s.log.Debug("smpp: intermediate receipt ignored", "id", id, "stat", stat)
		return Event{}, false
	}
	if code == codeUnknown && !strings.EqualFold(stat, "UNKNOWN") {
		s.log.Warn("smpp: receipt with an unknown stat", "id", id, "stat", stat)
	}
	return Event{Kind: Receipt, PartID: s.ids.resolve(id, fromText), Status: status, Code: code, At: it.at}, true
}

// receiptOutcome maps a receipt's stat to a status. ACCEPTD (taken on by
// the SMSC, or read to the subscriber by customer service), ENROUTE and
// the like are not final for smsdrop: the part stays "on" until a final
// receipt, or receipt_timeout makes it "no". DELETED (removed from the
// SMSC before delivery, which smsdrop never asks for) is UNDELIVERED, not
// CANCELLED: CANCELLED means the user withdrew the message.
func receiptOutcome(stat string) (status batch.Status, code string, final bool) {
	switch strings.ToUpper(stat) {
	case "DELIVRD", "DELIVERED":
		return batch.StatusOK, "", true
	case "UNDELIV", "UNDELIVERABLE", "DELETED":
		return batch.StatusKO, batch.CodeUndelivered, true
	case "REJECTD", "REJECTED":
		return batch.StatusKO, batch.CodeRejected, true
	case "EXPIRED":
		return batch.StatusKO, batch.CodeExpired, true
	case "ACCEPTD", "ACCEPTED", "ENROUTE", "BUFFRED", "BUFFERED", "SCHEDULED":
		return "", "", false
	}
	return batch.StatusNo, codeUnknown, true
}

// moDone identifies a concatenated reply that reply completed.
type moDone struct {
	key moKey
	seq int
}

// reply reads a mobile-originated message. A part of a concatenated reply
// gives an event only when it completes the reply.
func (s *SMPP) reply(it smppInbound, mo *moAssembler) (Event, bool, *moDone) {
	d := it.d
	payload, udh := smsText(d)
	coding := -1
	if enc := d.Message.Encoding(); enc != nil {
		coding = int(enc.DataCoding())
	}
	ev := Event{Kind: Reply, From: replyFrom(d.SourceAddr), To: d.DestAddr.Address(), At: it.at}
	ref, total, seq, ok := concatInfo(udh, d.OptionalParameters)
	if !ok || total <= 1 {
		ev.Text = decodeSMS(coding, payload)
		return ev, true, nil
	}
	key := moKey{from: d.SourceAddr.Address(), to: d.DestAddr.Address(), ref: ref, total: total}
	g := mo.add(it.at, key, seq, coding, payload)
	if g == nil {
		return Event{}, false, nil
	}
	ev.Text = g.text()
	return ev, true, &moDone{key: key, seq: seq}
}

// replyFrom writes a reply's originator as E.164 when it is an
// international or unqualified number ("00" prefix dropped); a national
// number (TON 2, or TON 0 with a trunk 0) or a name stays as given, since
// a '+' would make it wrong: the dispatcher reads national numbers in the
// account's country.
func replyFrom(a pdu.Address) string {
	digits, ok := numeric(a.Address())
	if !ok || a.Ton() == data.GSM_TON_NATIONAL || a.Ton() == data.GSM_TON_ALPHANUMERIC {
		return a.Address()
	}
	if a.Ton() == data.GSM_TON_UNKNOWN {
		switch {
		case strings.HasPrefix(digits, "00"):
			return "+" + digits[2:]
		case strings.HasPrefix(digits, "0"):
			return a.Address()
		}
	}
	return "+" + digits
}

// concatInfo finds a part's place in a concatenated message: UDH with an
// 8-bit (IE 0x00) or 16-bit (IE 0x08) reference, else the sar_* TLVs.
func concatInfo(udh pdu.UDH, tlvs map[pdu.Tag]pdu.Field) (ref uint16, total, seq int, ok bool) {
	if ie, found := udh.FindInfoElement(data.UDH_CONCAT_MSG_8_BIT_REF); found && len(ie.Data) == 3 {
		return uint16(ie.Data[0]), int(ie.Data[1]), int(ie.Data[2]), true
	}
	if ie, found := udh.FindInfoElement(data.UDH_CONCAT_MSG_16_BIT_REF); found && len(ie.Data) == 4 {
		return binary.BigEndian.Uint16(ie.Data), int(ie.Data[2]), int(ie.Data[3]), true
	}
	r, ok1 := tlvs[tagSarMsgRefNum]
	t, ok2 := tlvs[tagSarTotalSegments]
	q, ok3 := tlvs[tagSarSegmentSeqnum]
	if ok1 && ok2 && ok3 && len(r.Data) == 2 && len(t.Data) == 1 && len(q.Data) == 1 {
		return binary.BigEndian.Uint16(r.Data), int(t.Data[0]), int(q.Data[0]), true
	}
	return 0, 0, 0, false
}

// decodeSMS turns user data into text by its data_coding: 0 is unpacked GSM
// septets, 8 UTF-16BE, the 8-bit codings (1 IA5/ASCII, 3 Latin-1, binary
// and any the driver does not know, -1) Latin-1, so that nothing is lost.
func decodeSMS(coding int, b []byte) string {
	switch coding {
	case int(data.GSM7BITCoding):
		return batch.DecodeGSM(b)
	case int(data.UCS2Coding):
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u))
	case int(data.CYRILLICCoding), int(data.HEBREWCoding):
		if s, err := data.FromDataCoding(byte(coding)).Decode(b); err == nil {
			return s
		}
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// moKey identifies a concatenated message being assembled.
type moKey struct {
	from, to string
	ref      uint16
	total    int
}

// moGroup holds the parts of one concatenated message.
type moGroup struct {
	parts   [][]byte // by seq-1; nil until it came
	codings []int
	have    int
	since   time.Time
	done    bool // complete, its reply being stored
}

// text decodes the whole message. The parts' bytes are joined before
// decoding when they share a coding, so that a character a sender split
// between parts (a surrogate pair) survives.
func (g *moGroup) text() string {
	same := true
	for _, c := range g.codings {
		same = same && c == g.codings[0]
	}
	if same {
		var all []byte
		for _, p := range g.parts {
			all = append(all, p...)
		}
		return decodeSMS(g.codings[0], all)
	}
	var b strings.Builder
	for i, p := range g.parts {
		b.WriteString(decodeSMS(g.codings[i], p))
	}
	return b.String()
}

// moAssembler joins the parts of concatenated replies. It is used by Run's
// goroutine only.
type moAssembler struct {
	timeout time.Duration
	max     int
	groups  map[moKey]*moGroup
}

func newMOAssembler(timeout time.Duration, max int) *moAssembler {
	return &moAssembler{timeout: timeout, max: max, groups: map[moKey]*moGroup{}}
}

// add stores part seq of k and returns the group when that completes it.
// The group stays until forget or reopen; a part of it that comes again
// meanwhile is a duplicate and dropped, as is a part out of range.
func (a *moAssembler) add(now time.Time, k moKey, seq, coding int, payload []byte) *moGroup {
	if seq < 1 || seq > k.total {
		return nil
	}
	g := a.groups[k]
	if g != nil && g.done {
		return nil
	}
	if g == nil {
		if len(a.groups) >= a.max {
			a.dropOldest()
		}
		g = &moGroup{parts: make([][]byte, k.total), codings: make([]int, k.total), since: now}
		a.groups[k] = g
	}
	if g.parts[seq-1] == nil {
		g.have++
	}
	g.parts[seq-1] = append([]byte{}, payload...)
	g.codings[seq-1] = coding
	if g.have < k.total {
		return nil
	}
	g.done = true
	return g
}

// forget drops a group whose message was stored.
func (a *moAssembler) forget(k moKey) { delete(a.groups, k) }

// reopen takes back part seq of a completed group whose message could not
// be stored, so that its redelivery completes the group again.
func (a *moAssembler) reopen(k moKey, seq int) {
	if g := a.groups[k]; g != nil && g.parts[seq-1] != nil {
		g.parts[seq-1] = nil
		g.have--
		g.done = false
	}
}

func (a *moAssembler) dropOldest() {
	var oldest moKey
	var at time.Time
	first := true
	for k, g := range a.groups {
		if first || g.since.Before(at) {
			oldest, at, first = k, g.since, false
		}
	}
	delete(a.groups, oldest)
}

// expire drops the groups older than the timeout and returns how many.
func (a *moAssembler) expire(now time.Time) int {
	n := 0
	for k, g := range a.groups {
		if now.Sub(g.since) >= a.timeout {
			delete(a.groups, k)
			n++
		}
	}
	return n
}

// next returns when the oldest group expires.
func (a *moAssembler) next() (time.Time, bool) {
	var at time.Time
	found := false
	for _, g := range a.groups {
		if !found || g.since.Before(at) {
			at, found = g.since, true
		}
	}
	return at.Add(a.timeout), found
}

// idIndex remembers recent submit_sm_resp message ids, so that a receipt
// writing an id differently (another case, decimal for hex or the reverse,
// other zero padding) still names the part as submit_sm_resp did. It is
// bounded: the oldest ids are forgotten first, and their receipts keep the
// id as written.
type idIndex struct {
	mu   sync.Mutex
	keys map[string]string // lookup key → id as submit_sm_resp gave it
	ring []string
	next int
	// hexIDs is set once an id with a hex letter was seen: the SMSC gives
	// hex ids, and a receipt's id of digits only is then its decimal
	// value. Ids made of digits cannot tell before: at those, up to 9,
	// both readings agree.
	hexIDs bool
}

func newIDIndex(size int) *idIndex {
	return &idIndex{keys: make(map[string]string), ring: make([]string, size)}
}

// idKeys are the lookup keys of an id: itself, its lower case, and its
// numeric value when it reads as decimal ("d") or hexadecimal ("x").
func idKeys(id string) []string {
	keys := []string{"=" + id, "~" + strings.ToLower(id)}
	if v, ok := idValue(id, 10); ok {
		keys = append(keys, "d"+v)
	}
	if v, ok := idValue(id, 16); ok {
		keys = append(keys, "x"+v)
	}
	return keys
}

// idValue reads id in base and writes its value in decimal.
func idValue(id string, base int) (string, bool) {
	if id == "" || len(id) > 20 {
		return "", false
	}
	v, err := strconv.ParseUint(id, base, 64)
	if err != nil {
		return "", false
	}
	return strconv.FormatUint(v, 10), true
}

// add remembers id.
func (x *idIndex) add(id string) {
	if id == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.ring[x.next]; old != "" {
		for _, k := range idKeys(old) {
			if x.keys[k] == old {
				delete(x.keys, k)
			}
		}
	}
	x.ring[x.next] = id
	x.next = (x.next + 1) % len(x.ring)
	if !x.hexIDs && strings.ContainsAny(id, "abcdefABCDEF") {
		if _, ok := idValue(id, 16); ok {
			x.hexIDs = true
		}
	}
	for _, k := range idKeys(id) {
		x.keys[k] = id
	}
}

// resolve returns the remembered id that r stands for, trying the exact
// id, then its case, then the same number written otherwise; or r itself.
// The receipted_message_id TLV writes the id as submit_sm_resp did (SMPP
// 3.4), so a number in the same base comes first. A receipt text's "id:"
// of digits only, from an SMSC that gives hex ids (hexIDs), is the decimal
// value of one (a common pair: hex in submit_sm_resp, decimal in the text,
// Kannel's msg-id-type 0x01), so the other base comes first. Before, "10"
// (0x0A) found the id "00000010" (0x10), read as decimal, and its receipt
// went to the wrong message.
func (x *idIndex) resolve(r string, fromText bool) string {
	var tries []string
	tries = append(tries, "="+r, "~"+strings.ToLower(r))
	dec, isDec := idValue(r, 10)
	hex, isHex := idValue(r, 16)
	x.mu.Lock()
	defer x.mu.Unlock()
	crossFirst := isDec && fromText && x.hexIDs
	if crossFirst {
		tries = append(tries, "x"+dec)
	}
	if isDec {
		tries = append(tries, "d"+dec)
	}
	if isHex {
		tries = append(tries, "x"+hex)
	}
	if isDec && !crossFirst {
		tries = append(tries, "x"+dec)
	}
	if isHex {
		tries = append(tries, "d"+hex)
	}
	for _, k := range tries {
		if id, ok := x.keys[k]; ok {
			return id
		}
	}
	return r
}
