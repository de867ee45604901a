package sender

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"smsdrop/batch"
	"smsdrop/clock"
)

// Defaults of SMPPOptions.
const (
	DefaultSMPPWindow      = 10
	DefaultSMPPEnquireLink = 30 * time.Second
	DefaultSMPPBindTimeout = 10 * time.Second
)

// Codes of the errors Send returns besides batch.CodeRejected ("REJECTED:0x…")
// and batch.CodeUnconfirmed.
const (
	// CodeThrottled: the SMSC answered ESME_RTHROTTLED; nothing of the
	// message was accepted, so it is retried.
	CodeThrottled = "THROTTLED"
	// CodeQueueFull: the SMSC answered ESME_RMSGQFUL; retried likewise.
	CodeQueueFull = "QUEUE_FULL"
	// CodeSMSCError: the SMSC answered a temporary error of its own
	// (ESME_RX_T_APPN, ESME_RSYSERR, or a generic_nack); retried likewise.
	CodeSMSCError = "SMSC_ERROR"
	// CodeConnectionLost: no part of the message reached the SMSC (no
	// connection, or it broke before the part was written); retried.
	CodeConnectionLost = "CONNECTION_LOST"
	// CodeIncomplete: some parts of a long message were accepted, the others
	// could not be handed over before Send's deadline. Permanent: sending the
	// message again would deliver the accepted parts twice.
	CodeIncomplete = "INCOMPLETE"
)

// Bounds of the reconnection backoff (SPEC §8) and of the pause before a
// refused part of a partly accepted message is submitted again.
const (
	smppBackoffMin   = time.Second
	smppBackoffMax   = 30 * time.Second
	smppPartRetryMin = 200 * time.Millisecond
	smppPartRetryMax = 2 * time.Second
)

// SMPPOptions configure an SMPP driver.
type SMPPOptions struct {
	// Addr is the SMSC's host:port.
	Addr string
	// SystemID, Password and SystemType are sent in bind_transceiver.
	SystemID, Password, SystemType string
	// SourceAddr is the originator of a Message without From.
	SourceAddr string
	// Window is the most submit_sm awaiting their submit_sm_resp at once;
	// zero means DefaultSMPPWindow.
	Window int
	// EnquireLink is the interval of enquire_link; zero means
	// DefaultSMPPEnquireLink.
	EnquireLink time.Duration
	// BindTimeout bounds connecting and binding, and each write; zero means
	// DefaultSMPPBindTimeout.
	BindTimeout time.Duration
	// Clock drives reconnection backoff, the expiry of incomplete
	// concatenated replies and event times; nil means the wall clock.
	Clock clock.Clock
	// Logger receives connection changes and protocol oddities; nil
	// discards them.
	Logger *slog.Logger
}

// SMPP is the SMPP 3.4 transceiver driver (SPEC §8), built on gosmpp.
//
// NewSMPP does not connect: Connect binds once and reports a refused bind
// with the address and the SMPP status, so that start-up can fail fast on bad
// credentials; Run keeps the bind up, reconnecting with exponential backoff
// after any disconnect, and delivers receipts and replies. Send works on
// whatever connection is up and fails fast, temporarily, when none is.
//
// Hand-over outcomes follow SPEC §9 ("nothing is handed to the provider
// twice"): a message is retryable (a temporary *Error) only when no part of
// it can have been accepted. A part written to the socket whose
// submit_sm_resp never came (the connection broke, or Send's context ended)
// may have been accepted, so its message gets the permanent
// batch.CodeUnconfirmed. When some parts of a long message were accepted and
// another is refused for good, the message gets the permanent
// "REJECTED:0x<status>" of the refused part; when another part is only
// refused for now (throttled, or lost with the connection before it was
// written), Send submits that part again itself, on a later connection if
// need be, until its context ends, and then gives CodeIncomplete.
type SMPP struct {
	addr, systemID, password, systemType string
	source                               string
	window                               int
	enquireLink, bindTimeout             time.Duration
	clk                                  clock.Clock
	log                                  *slog.Logger

	// Tests shorten these to keep reconnection fast.
	backoffMin, backoffMax time.Duration
	partRetryMin           time.Duration

	ref atomic.Uint32 // concatenation reference, one per long message
	gen atomic.Uint64 // connection number, for logs

	dialMu sync.Mutex // one bind at a time

	mu      sync.Mutex
	conn    *smppConn     // the bound connection, nil when there is none
	changed chan struct{} // closed and replaced whenever conn is set
	lastErr error         // why the last bind or connection failed
	closed  bool
	closeCh chan struct{}

	ids   *idIndex
	inbox *smppInbox

	running atomic.Bool
}

var _ Sender = (*SMPP)(nil)

// NewSMPP checks opts and returns a driver that is not connected yet.
func NewSMPP(opts SMPPOptions) (*SMPP, error) {
	switch {
	case opts.Addr == "":
		return nil, errors.New("smpp: no SMSC address")
	case opts.SystemID == "":
		return nil, errors.New("smpp: no system_id")
	case opts.Window < 0:
		return nil, fmt.Errorf("smpp: negative window %d", opts.Window)
	case opts.EnquireLink < 0:
		return nil, fmt.Errorf("smpp: negative enquire_link interval %v", opts.EnquireLink)
	case opts.BindTimeout < 0:
		return nil, fmt.Errorf("smpp: negative bind timeout %v", opts.BindTimeout)
	}
	if opts.SourceAddr != "" {
		if _, err := sourceAddress(opts.SourceAddr); err != nil {
			return nil, err
		}
	}
	s := &SMPP{
		addr:         opts.Addr,
		systemID:     opts.SystemID,
		password:     opts.Password,
		systemType:   opts.SystemType,
		source:       opts.SourceAddr,
		window:       cmp.Or(opts.Window, DefaultSMPPWindow),
		enquireLink:  cmp.Or(opts.EnquireLink, DefaultSMPPEnquireLink),
		bindTimeout:  cmp.Or(opts.BindTimeout, DefaultSMPPBindTimeout),
		clk:          opts.Clock,
		log:          opts.Logger,
		backoffMin:   smppBackoffMin,
		backoffMax:   smppBackoffMax,
		partRetryMin: smppPartRetryMin,
		changed:      make(chan struct{}),
		closeCh:      make(chan struct{}),
		ids:          newIDIndex(smppIDIndexSize),
		inbox:        newSMPPInbox(smppInboxMax),
	}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Connect binds to the SMSC unless a bind is already up. A refused bind
// gives an error naming the address and the SMPP status (for instance
// ESME_RINVPASWD), which errors.As finds as a gosmpp.BindError. Only Run
// binds again after a disconnect.
func (s *SMPP) Connect(ctx context.Context) error {
	_, err := s.connect(ctx)
	return err
}

// current returns the bound connection, or nil.
func (s *SMPP) current() *smppConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn.isDead() {
		return nil
	}
	return s.conn
}

var _ IDLearner = (*SMPP)(nil)

// LearnIDs remembers ids handed over before a restart, so that a receipt
// writing one of them differently still finds its part: the index of ids
// is in memory only.
func (s *SMPP) LearnIDs(ids []string) {
	for _, id := range ids {
		s.ids.add(id)
	}
}

// Healthy reports whether the SMSC is bound; /healthz answers 503 while
// it is not.
func (s *SMPP) Healthy() error {
	if s.current() != nil {
		return nil
	}
	return s.notConnected()
}

// notConnected is the reason Send gives when there is no connection.
func (s *SMPP) notConnected() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("smpp: driver closed")
	}
	if s.lastErr != nil {
		return fmt.Errorf("smpp: not connected to %s: %w", s.addr, s.lastErr)
	}
	return fmt.Errorf("smpp: not connected to %s", s.addr)
}

// connect returns the bound connection, binding first if there is none.
func (s *SMPP) connect(ctx context.Context) (*smppConn, error) {
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	if c := s.current(); c != nil {
		return c, nil
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("smpp: driver closed")
	}
	c, err := s.dial(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
		return nil, err
	}
	if s.closed {
		// Close ran during the bind and could not see this connection.
		go c.close()
		return nil, errors.New("smpp: driver closed")
	}
	s.conn = c
	s.lastErr = nil
	close(s.changed)
	s.changed = make(chan struct{})
	s.log.Info("smpp: bound", "addr", s.addr, "system_id", s.systemID, "conn", c.gen)
	return c, nil
}

// waitConn waits for a bound connection, which Run makes.
func (s *SMPP) waitConn(ctx context.Context) (*smppConn, error) {
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if c := s.current(); c != nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closeCh:
			return nil, errors.New("smpp: driver closed")
		case <-changed:
		}
	}
}

// Close unbinds and closes the connection; Send fails and Run returns
// afterwards.
func (s *SMPP) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closeCh)
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.close()
	}
	return nil
}

// Run keeps the SMSC bound and hands receipts and replies to h until ctx is
// done or the driver is closed; then it returns nil. Each deliver_sm is
// answered only after h returned nil for its event; when h fails, it is
// answered ESME_RX_T_APPN so that the SMSC delivers it again later. Only one
// Run may go at a time.
func (s *SMPP) Run(ctx context.Context, h EventHandler) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("smpp: Run already running")
	}
	defer s.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.keep(ctx)
	}()
	s.deliverLoop(ctx, h)
	return nil
}

// keep binds, and binds again after every disconnect, waiting between
// attempts with exponential backoff. The backoff starts over only after a
// connection that lasted, so that an SMSC that accepts binds and drops them
// at once is not hammered.
func (s *SMPP) keep(ctx context.Context) {
	backoff := s.backoffMin
	wait := func() bool {
		t := s.clk.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, s.backoffMax)
		select {
		case <-ctx.Done():
			return false
		case <-s.closeCh:
			return false
		case <-t.C():
			return true
		}
	}
	for {
		c, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil || s.isClosed() {
				return
			}
			s.log.Warn("smpp: bind failed, retrying", "addr", s.addr, "in", backoff, "err", err)
			if !wait() {
				return
			}
			continue
		}
		up := s.clk.Now()
		select {
		case <-ctx.Done():
			return
		case <-s.closeCh:
			return
		case <-c.done:
		}
		err = c.cause()
		s.mu.Lock()
		if s.conn == c {
			s.conn = nil
			s.lastErr = err
		}
		s.mu.Unlock()
		go c.close() // stops gosmpp's goroutines; may wait for its reader
		if s.isClosed() {
			return
		}
		if s.clk.Now().Sub(up) >= s.backoffMax {
			backoff = s.backoffMin
		}
		s.log.Warn("smpp: connection lost, reconnecting", "addr", s.addr, "conn", c.gen, "in", backoff, "err", err)
		if !wait() {
			return
		}
	}
}

func (s *SMPP) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// smppPart is one submit_sm of a Send call and what became of it.
type smppPart struct {
	msg     int    // index of its message in the call
	seq     int    // 1-based part number
	payload []byte // short_message: UDH (long messages) then septets or UTF-16BE
	coding  byte
	udh     bool // payload starts with a concatenation UDH
	out     partOutcome
	// submitted is set once the part was given to the connection.
	submitted bool
}

// partKind says what became of a submitted part.
type partKind int

const (
	partPending     partKind = iota // not submitted yet, or no answer yet
	partAccepted                    // submit_sm_resp with status 0
	partRefused                     // submit_sm_resp (or generic_nack) with an error status
	partNotSent                     // never written to a socket
	partUnconfirmed                 // written, but its answer never came
)

// partOutcome is the fate of one part.
type partOutcome struct {
	idx    int // index into smppCall.parts
	kind   partKind
	id     string                 // message_id when accepted
	status data.CommandStatusType // when refused
	err    error                  // when not sent or unconfirmed
}

// temporary reports whether a refusal leaves the part sendable again.
func (o partOutcome) temporary() bool {
	switch o.kind {
	case partNotSent:
		return true
	case partRefused:
		switch o.status {
		case data.ESME_RTHROTTLED, data.ESME_RMSGQFUL,
			// "temporary application error", and the SMSC's own
			// failure (also what a generic_nack becomes): an SMSC
			// hiccup, not the message's fault.
			data.ESME_RX_T_APPN, data.ESME_RSYSERR:
			return true
		}
	}
	return false
}

// smppCall is one Send: its messages' parts, in order.
type smppCall struct {
	msgs    []Message
	results []Result
	first   []int // index of each message's first part; -1 for a malformed message
	parts   []smppPart
}

// Send submits every part of msgs, pipelined up to the window, and returns
// one Result per message in order (see SMPP for how outcomes map).
func (s *SMPP) Send(ctx context.Context, msgs []Message) []Result {
	call := s.prepare(msgs)
	todo := make([]int, len(call.parts))
	for i := range todo {
		todo[i] = i
	}
	s.pass(ctx, call, todo, true)
	backoff := s.partRetryMin
	for {
		todo = call.incomplete()
		if len(todo) == 0 || ctx.Err() != nil {
			break
		}
		t := s.clk.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C():
		}
		t.Stop()
		backoff = min(2*backoff, smppPartRetryMax)
		if ctx.Err() != nil {
			break
		}
		s.log.Debug("smpp: resubmitting parts of partly accepted messages", "parts", len(todo))
		s.pass(ctx, call, todo, false)
	}
	for i := range msgs {
		if call.first[i] >= 0 {
			call.results[i] = call.result(i)
		}
	}
	return call.results
}

// prepare splits every message into parts; a message that cannot be sent
// gets its permanent error at once.
func (s *SMPP) prepare(msgs []Message) *smppCall {
	call := &smppCall{msgs: msgs, results: make([]Result, len(msgs)), first: make([]int, len(msgs))}
	n := 0
	for _, m := range msgs {
		n += max(m.Segments, 1)
	}
	call.parts = make([]smppPart, 0, n)
	for i, m := range msgs {
		call.first[i] = -1
		var coding byte
		switch m.Encoding {
		case batch.EncodingGSM:
			coding = data.GSM7BITCoding
		case batch.EncodingUCS2:
			coding = data.UCS2Coding
		default:
			call.results[i].Err = &Error{Code: batch.CodeRejected, Err: fmt.Errorf("smpp: message %s: unknown encoding %q", m.ID, m.Encoding)}
			continue
		}
		if err := s.checkAddresses(m); err != nil {
			call.results[i].Err = &Error{Code: batch.CodeRejected, Err: fmt.Errorf("smpp: message %s: %w", m.ID, err)}
			continue
		}
		payloads := batch.Split(m.Text, m.Encoding)
		if len(payloads) > 255 {
			call.results[i].Err = &Error{Code: batch.CodeRejected, Err: fmt.Errorf("smpp: message %s: %d parts, more than a UDH can number", m.ID, len(payloads))}
			continue
		}
		call.first[i] = len(call.parts)
		ref := byte(s.ref.Add(1))
		for p, pl := range payloads {
			part := smppPart{msg: i, seq: p + 1, payload: pl, coding: coding}
			if len(payloads) > 1 {
				part.payload = append(batch.UDH(ref, len(payloads), p+1), pl...)
				part.udh = true
			}
			call.parts = append(call.parts, part)
		}
	}
	return call
}

// partsOf returns the parts of message i.
func (c *smppCall) partsOf(i int) []smppPart {
	f := c.first[i]
	end := f + 1
	for end < len(c.parts) && c.parts[end].msg == i {
		end++
	}
	return c.parts[f:end]
}

// started reports whether any part of message i was submitted, so that a
// throttled call still completes the messages it began.
func (c *smppCall) started(i int) bool {
	for _, p := range c.partsOf(i) {
		if p.submitted {
			return true
		}
	}
	return false
}

// incomplete lists the parts to submit again: the temporarily refused parts
// of messages with an accepted part, no refused-for-good part and no
// unconfirmed part.
func (c *smppCall) incomplete() []int {
	var todo []int
	for i := range c.msgs {
		if c.first[i] < 0 {
			continue
		}
		ps := c.partsOf(i)
		accepted, final := 0, false
		for _, p := range ps {
			switch {
			case p.out.kind == partAccepted:
				accepted++
			case p.out.kind == partUnconfirmed, !p.out.temporary():
				final = true
			}
		}
		if accepted == 0 || accepted == len(ps) || final {
			continue
		}
		for j, p := range ps {
			if p.out.kind != partAccepted {
				todo = append(todo, c.first[i]+j)
			}
		}
	}
	return todo
}

// result turns message i's part outcomes into its Result.
func (c *smppCall) result(i int) Result {
	ps := c.partsOf(i)
	ids := make([]string, 0, len(ps))
	var refused, unconfirmed, temp *partOutcome
	for j := range ps {
		o := &ps[j].out
		switch {
		case o.kind == partAccepted:
			ids = append(ids, o.id)
		case o.kind == partUnconfirmed:
			unconfirmed = cmp.Or(unconfirmed, o)
		case o.temporary():
			temp = cmp.Or(temp, o)
		default:
			refused = cmp.Or(refused, o)
		}
	}
	m := c.msgs[i]
	accepted := ""
	if len(ids) > 0 {
		accepted = fmt.Sprintf(" (%d of %d parts accepted: %s)", len(ids), len(ps), strings.Join(ids, ","))
	}
	switch {
	case len(ids) == len(ps):
		return Result{PartIDs: ids}
	case refused != nil:
		return Result{Err: &Error{
			Code: fmt.Sprintf("%s:0x%08X", batch.CodeRejected, uint32(refused.status)),
			Err:  fmt.Errorf("smpp: message %s part %d refused: %s%s", m.ID, ps[refused.idx-c.first[i]].seq, refused.status, accepted),
		}}
	case unconfirmed != nil:
		return Result{Err: &Error{
			Code: batch.CodeUnconfirmed,
			Err:  fmt.Errorf("smpp: message %s part %d written but not acknowledged%s: %w", m.ID, ps[unconfirmed.idx-c.first[i]].seq, accepted, unconfirmed.err),
		}}
	case len(ids) > 0:
		return Result{Err: &Error{
			Code: CodeIncomplete,
			Err:  fmt.Errorf("smpp: message %s part %d not handed over%s: %w", m.ID, ps[temp.idx-c.first[i]].seq, accepted, temp.failure()),
		}}
	}
	code := CodeConnectionLost
	switch {
	case temp.kind == partRefused && temp.status == data.ESME_RTHROTTLED:
		code = CodeThrottled
	case temp.kind == partRefused && temp.status == data.ESME_RMSGQFUL:
		code = CodeQueueFull
	case temp.kind == partRefused:
		code = CodeSMSCError
	}
	return Result{Err: &Error{Code: code, Temporary: true, Err: fmt.Errorf("smpp: message %s: %w", m.ID, temp.failure())}}
}

// failure describes a part that was not accepted.
func (o *partOutcome) failure() error {
	switch {
	case o.err != nil:
		return o.err
	case o.kind == partRefused:
		return fmt.Errorf("refused with %s", o.status)
	}
	return errors.New("not submitted")
}

// pass submits the parts todo on the current connection, keeping at most
// the window in flight, and waits for every one's outcome. With fresh (the
// first pass), once the SMSC throttles, messages not yet begun are not
// submitted at all: they are retried later as a whole.
func (s *SMPP) pass(ctx context.Context, call *smppCall, todo []int, fresh bool) {
	var c *smppConn
	if fresh {
		c = s.current()
	} else if cc, err := s.waitConn(ctx); err == nil {
		c = cc
	}
	out := make(chan partOutcome, len(todo))
	waiting := 0
	throttled := false
	record := func(o partOutcome) {
		waiting--
		call.parts[o.idx].out = o
		if o.kind == partRefused && o.temporary() {
			throttled = true
		}
	}
	for _, idx := range todo {
		p := &call.parts[idx]
		if c == nil {
			p.out = partOutcome{idx: idx, kind: partNotSent, err: s.notConnected()}
			continue
		}
		// A message not begun is held back whole once the SMSC throttles:
		// begun, a long message's later parts would be delivered without
		// its first ones (ko INCOMPLETE), where held it is retried whole.
		// Asked again once a window slot is free: the throttle answer
		// that frees the slot may be the first.
		hold := func() bool { return fresh && throttled && !call.started(p.msg) }
		held := partOutcome{idx: idx, kind: partRefused, status: data.ESME_RTHROTTLED,
			err: errors.New("not submitted: the SMSC is throttling this call's messages")}
		if hold() {
			p.out = held
			continue
		}
		req, err := s.submitPDU(call.msgs[p.msg], p)
		if err != nil {
			// checkAddresses vouched for the addresses: cannot happen.
			p.out = partOutcome{idx: idx, kind: partRefused, status: data.ESME_RSUBMITFAIL, err: err}
			continue
		}
		p.out = partOutcome{idx: idx}
		if err := c.submit(ctx, req, idx, out, record, hold); err != nil {
			p.out = partOutcome{idx: idx, kind: partNotSent, err: err}
			if errors.Is(err, errHeld) {
				p.out = held
			}
			continue
		}
		p.submitted = true
		waiting++
	}
	for waiting > 0 {
		select {
		case o := <-out:
			record(o)
		case <-ctx.Done():
			// Every part still waiting gets its outcome at once.
			if n := c.abandon(out, ctx.Err()); n > 0 {
				// An SMSC that leaves submit_sm unanswered this long would
				// keep the window shut for good: start afresh on a new bind.
				s.log.Warn("smpp: submit_sm unanswered at the deadline, dropping the connection", "conn", c.gen, "parts", n)
				go c.close()
			}
			for waiting > 0 {
				record(<-out)
			}
		}
	}
}

// validityPeriod writes t in SMPP 3.4's absolute time format
// ("YYMMDDhhmmsstnnp", §7.1.1), in UTC; "" (the SMSC's default) for the
// zero time.
func validityPeriod(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("060102150405") + "000+"
}

// submitPDU builds the submit_sm of part p of m.
func (s *SMPP) submitPDU(m Message, p *smppPart) (*pdu.SubmitSM, error) {
	req := pdu.NewSubmitSM().(*pdu.SubmitSM)
	from := cmp.Or(m.From, s.source)
	src, err := sourceAddress(from)
	if err != nil {
		return nil, err
	}
	dst, err := destAddress(m.To)
	if err != nil {
		return nil, err
	}
	req.SourceAddr, req.DestAddr = src, dst
	req.RegisteredDelivery = data.SM_SMSC_RECEIPT_REQUESTED
	// The SMSC stops trying at the batch's validity, as smsdrop does:
	// without it, it kept its own default (often days) and delivered
	// messages long after they were due.
	req.ValidityPeriod = validityPeriod(m.Deadline)
	if p.udh {
		req.EsmClass = data.SM_UDH_GSM
	}
	enc := data.GSM7BIT
	if p.coding == data.UCS2Coding {
		enc = data.UCS2
	}
	// SetMessageDataWithEncoding keeps the bytes as they are: data_coding
	// comes from enc, and nothing is encoded, packed or split again.
	if err := req.Message.SetMessageDataWithEncoding(p.payload, enc); err != nil {
		return nil, fmt.Errorf("smpp: short_message: %w", err)
	}
	return req, nil
}

// checkAddresses tells whether m's addresses fit a submit_sm.
func (s *SMPP) checkAddresses(m Message) error {
	if _, err := sourceAddress(cmp.Or(m.From, s.source)); err != nil {
		return err
	}
	_, err := destAddress(m.To)
	return err
}

// sourceAddress is the originator: an alphanumeric sender name goes as TON
// 5 (alphanumeric) NPI 0, a number as TON 1 (international) NPI 1 (E.164)
// without its '+'; no originator leaves the SMSC to fill it in.
func sourceAddress(from string) (pdu.Address, error) {
	if from == "" {
		return pdu.NewAddressWithTonNpi(0, 0), nil
	}
	if digits, ok := numeric(from); ok {
		a, err := pdu.NewAddressWithTonNpiAddr(data.GSM_TON_INTERNATIONAL, data.GSM_NPI_E164, digits)
		if err != nil || len(digits) > 20 {
			return a, fmt.Errorf("smpp: originator %q too long", from)
		}
		return a, nil
	}
	if len(from) > 11 {
		return pdu.Address{}, fmt.Errorf("smpp: alphanumeric originator %q longer than 11 characters", from)
	}
	return pdu.NewAddressWithTonNpiAddr(data.GSM_TON_ALPHANUMERIC, data.GSM_NPI_UNKNOWN, from)
}

// destAddress is the recipient, an E.164 number, as TON 1 NPI 1 without '+'.
func destAddress(to string) (pdu.Address, error) {
	digits, ok := numeric(to)
	if !ok || len(digits) > 20 {
		return pdu.Address{}, fmt.Errorf("smpp: recipient %q is not an international number", to)
	}
	return pdu.NewAddressWithTonNpiAddr(data.GSM_TON_INTERNATIONAL, data.GSM_NPI_E164, digits)
}

// numeric returns s without a leading '+' when the rest is digits only.
func numeric(s string) (string, bool) {
	d := strings.TrimPrefix(s, "+")
	if d == "" {
		return "", false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return "", false
		}
	}
	return d, true
}
