package sender

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/linxGnu/gosmpp"
	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

// smppConn is one bound connection: a gosmpp session, its window and the
// submit_sm awaiting their answers. A new bind is a new smppConn, so that
// nothing of a broken connection leaks into the next one.
type smppConn struct {
	s     *SMPP
	gen   uint64
	slots chan struct{} // the window: one token per submit_sm in flight
	done  chan struct{} // closed when the connection is lost or closed
	ready chan struct{} // closed once sess is set
	sess  *gosmpp.Session

	mu      sync.Mutex
	pending map[int32]*smppInflight // by sequence number
	dead    bool
	why     error // why it was lost
	ioErr   error // the last I/O error gosmpp reported
}

// smppInflight is a submit_sm handed to gosmpp, and whether its bytes went
// out: that decides between "retry" and "unconfirmed" if no answer comes.
type smppInflight struct {
	idx       int
	out       chan<- partOutcome
	written   bool
	abandoned bool // its Send gave up on it after it was written
	resolved  bool // its outcome was sent on out
}

// dial connects, binds as a transceiver and starts gosmpp's reader and
// writer. gosmpp is told not to rebind: keep does that, with backoff.
func (s *SMPP) dial(ctx context.Context) (*smppConn, error) {
	c := &smppConn{
		s:       s,
		gen:     s.gen.Add(1),
		slots:   make(chan struct{}, s.window),
		done:    make(chan struct{}),
		ready:   make(chan struct{}),
		pending: map[int32]*smppInflight{},
	}
	bctx, cancel := context.WithTimeout(ctx, s.bindTimeout)
	defer cancel()
	settings := gosmpp.Settings{
		// A silent SMSC answers the next enquire_link within the bind
		// timeout, or the connection is dead.
		ReadTimeout:      s.enquireLink + s.bindTimeout,
		WriteTimeout:     s.bindTimeout,
		EnquireLink:      s.enquireLink,
		OnAllPDU:         c.onPDU,
		OnReceivingError: c.setIOErr,
		OnSubmitError:    func(_ pdu.PDU, err error) { c.setIOErr(err) },
		OnClosed:         c.lost,
	}
	sess, err := gosmpp.NewSession(&smppConnector{ctx: bctx, c: c}, settings, 0)
	if err != nil {
		return nil, err
	}
	c.sess = sess
	close(c.ready)
	return c, nil
}

// smppConnector binds for gosmpp. gosmpp's own connector cannot read a
// bind_transceiver_resp without a body, which is how SMSCs refuse a bind,
// and has no timeout: this one reports the SMPP status and obeys ctx.
type smppConnector struct {
	ctx context.Context
	c   *smppConn
}

// GetBindType implements gosmpp.Connector.
func (k *smppConnector) GetBindType() pdu.BindingType { return pdu.Transceiver }

// Connect implements gosmpp.Connector.
func (k *smppConnector) Connect() (*gosmpp.Connection, error) {
	s, ctx := k.c.s, k.ctx
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("smpp: connect to %s: %w", s.addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	// Cancelling ctx unblocks the bind at once.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	req := pdu.NewBindRequest(pdu.Transceiver)
	req.SystemID, req.Password, req.SystemType = s.systemID, s.password, s.systemType
	buf := pdu.NewBuffer(make([]byte, 0, 64))
	req.Marshal(buf)
	if _, err = raw.Write(buf.Bytes()); err == nil {
		err = readBindResp(raw, req.SequenceNumber)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = raw.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = raw.Close()
		var be gosmpp.BindError
		if errors.As(err, &be) {
			return nil, fmt.Errorf("smpp: bind_transceiver to %s as %q refused: %w", s.addr, s.systemID, err)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (bind timeout %v)", err, s.bindTimeout)
		}
		return nil, fmt.Errorf("smpp: bind_transceiver to %s: %w", s.addr, err)
	}
	return gosmpp.NewConnection(&watchConn{Conn: raw, c: k.c}), nil
}

// readBindResp reads PDUs up to the answer to the bind with sequence
// number seq and returns a gosmpp.BindError when it is a refusal.
func readBindResp(r io.Reader, seq int32) error {
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("reading bind answer: %w", err)
		}
		h := pdu.ParseHeader(hdr)
		if h.CommandLength < 16 || h.CommandLength > data.MAX_PDU_LEN {
			return fmt.Errorf("reading bind answer: invalid command_length %d", h.CommandLength)
		}
		if _, err := io.CopyN(io.Discard, r, int64(h.CommandLength-16)); err != nil {
			return fmt.Errorf("reading bind answer: %w", err)
		}
		switch {
		case h.CommandID == data.GENERIC_NACK:
			return gosmpp.BindError{CommandStatus: h.CommandStatus}
		case h.CommandID == data.BIND_TRANSCEIVER_RESP && h.SequenceNumber == seq:
			if h.CommandStatus != data.ESME_ROK {
				return gosmpp.BindError{CommandStatus: h.CommandStatus}
			}
			return nil
		}
		// Anything else before the answer (an early enquire_link) can wait
		// for the bind.
	}
}

// watchConn sees every PDU gosmpp writes (one Write each) and records when
// a submit_sm goes out, so that a lost connection tells apart the parts
// the SMSC may have (unconfirmed) from those it cannot have (retryable).
type watchConn struct {
	net.Conn
	c *smppConn
}

// Write implements net.Conn.
func (w *watchConn) Write(b []byte) (int, error) {
	if len(b) < 16 || data.CommandIDType(binary.BigEndian.Uint32(b[4:])) != data.SUBMIT_SM {
		return w.Conn.Write(b)
	}
	seq := int32(binary.BigEndian.Uint32(b[12:]))
	c := w.c
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	e := c.pending[seq]
	if e == nil || e.resolved {
		// Its Send gave up on it before it went out: it must never go
		// out now, since that Send reported it as not handed over.
		c.mu.Unlock()
		return len(b), nil
	}
	e.written = true
	c.mu.Unlock()
	n, err := w.Conn.Write(b)
	if n < len(b) {
		// The SMSC cannot act on a truncated PDU, and gosmpp closes the
		// connection after a short write.
		c.mu.Lock()
		if !e.resolved {
			e.written = false
		}
		c.mu.Unlock()
	}
	return n, err
}

// errHeld is submit's answer when hold said no once a slot was free.
var errHeld = errors.New("smpp: held back")

// submit waits for a window slot, handing outcomes that arrive meanwhile to
// record, asks hold (when set) whether to go on, registers req and gives it
// to gosmpp's writer. An error means req was not submitted; otherwise
// exactly one outcome for it comes on out.
func (c *smppConn) submit(ctx context.Context, req *pdu.SubmitSM, idx int, out chan partOutcome, record func(partOutcome), hold func() bool) error {
	for acquired := false; !acquired; {
		select {
		case c.slots <- struct{}{}:
			acquired = true
		case o := <-out:
			record(o)
		case <-c.done:
			return c.cause()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if hold != nil {
		// The answer that freed the slot is in out by now: record it,
		// and whatever else came, before hold decides.
		for more := true; more; {
			select {
			case o := <-out:
				record(o)
			default:
				more = false
			}
		}
		if hold() {
			<-c.slots
			return errHeld
		}
	}
	seq := req.SequenceNumber
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return c.cause()
	}
	e := &smppInflight{idx: idx, out: out}
	c.pending[seq] = e
	c.mu.Unlock()
	// Never under c.mu: gosmpp's writer takes it in watchConn.Write.
	if err := c.sess.Transceiver().Submit(req); err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.resolved {
			return nil // the connection's loss already reported it
		}
		delete(c.pending, seq)
		<-c.slots
		return fmt.Errorf("smpp: submit on connection %d: %w", c.gen, err)
	}
	return nil
}

// abandon settles every part of out still waiting: those not written yet
// are withdrawn (watchConn will not write them), those written become
// unconfirmed. It returns how many were written.
func (c *smppConn) abandon(out chan<- partOutcome, why error) (written int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for seq, e := range c.pending {
		if e.out != out || e.resolved {
			continue
		}
		e.resolved = true
		if e.written {
			// Its window slot stays taken until its answer comes.
			e.abandoned = true
			e.out <- partOutcome{idx: e.idx, kind: partUnconfirmed, err: why}
			written++
			continue
		}
		delete(c.pending, seq)
		<-c.slots
		e.out <- partOutcome{idx: e.idx, kind: partNotSent, err: why}
	}
	return written
}

// answer settles the submit_sm with sequence number seq.
func (c *smppConn) answer(seq int32, status data.CommandStatusType, id string) {
	c.mu.Lock()
	e := c.pending[seq]
	if e == nil {
		c.mu.Unlock()
		c.s.log.Warn("smpp: answer to no submit_sm in flight", "conn", c.gen, "seq", seq, "status", status.String(), "message_id", id)
		return
	}
	delete(c.pending, seq)
	if status == data.ESME_ROK {
		c.s.ids.add(id)
	}
	if e.abandoned {
		<-c.slots
		c.mu.Unlock()
		c.s.log.Warn("smpp: late answer to a part reported unconfirmed", "conn", c.gen, "seq", seq, "status", status.String(), "message_id", id)
		return
	}
	e.resolved = true
	o := partOutcome{idx: e.idx, kind: partAccepted, id: id}
	if status != data.ESME_ROK {
		o = partOutcome{idx: e.idx, kind: partRefused, status: status}
	}
	// The outcome before the slot (out has room for every part): a submit
	// that gets the slot finds the answer that freed it (see submit).
	e.out <- o
	<-c.slots
	c.mu.Unlock()
}

// onPDU handles what the SMSC sends (gosmpp's OnAllPDU, on its reader
// goroutine, which must not block). deliver_sm is answered later, by Run,
// once its event is stored.
func (c *smppConn) onPDU(p pdu.PDU) (pdu.PDU, bool) {
	switch q := p.(type) {
	case *pdu.SubmitSMResp:
		c.answer(q.SequenceNumber, q.CommandStatus, q.MessageID)
	case *pdu.GenericNack:
		status := q.CommandStatus
		if status == data.ESME_ROK {
			status = data.ESME_RSYSERR // a nack is never an acceptance
		}
		c.answer(q.SequenceNumber, status, "")
	case *pdu.DeliverSM:
		if !c.s.inbox.put(smppInbound{c: c, d: q, at: c.s.clk.Now()}) {
			c.s.log.Warn("smpp: too many deliver_sm waiting for the event handler, asking the SMSC to retry", "conn", c.gen)
			resp := q.GetResponse().(*pdu.DeliverSMResp)
			resp.CommandStatus = data.ESME_RX_T_APPN
			return resp, false
		}
	case *pdu.EnquireLink:
		return q.GetResponse(), false
	case *pdu.Unbind:
		c.s.log.Info("smpp: SMSC unbinds", "addr", c.s.addr, "conn", c.gen)
		return q.GetResponse(), true
	case *pdu.EnquireLinkResp, *pdu.UnbindResp:
	default:
		if p.CanResponse() {
			h := p.GetHeader()
			c.s.log.Warn("smpp: unsupported request from the SMSC", "conn", c.gen, "command", h.CommandID.String())
			nack := pdu.NewGenericNack().(*pdu.GenericNack)
			nack.SequenceNumber = h.SequenceNumber
			nack.CommandStatus = data.ESME_RINVCMDID
			return nack, false
		}
	}
	return nil, false
}

// respond answers a deliver_sm on the connection it came on. When that
// connection is gone there is nothing to answer: the SMSC delivers again.
func (c *smppConn) respond(d *pdu.DeliverSM, status data.CommandStatusType) {
	select {
	case <-c.ready:
	case <-c.done:
		return
	}
	if c.isDead() {
		return
	}
	resp := d.GetResponse().(*pdu.DeliverSMResp)
	resp.CommandStatus = status
	if err := c.sess.Transceiver().Submit(resp); err != nil {
		c.s.log.Warn("smpp: deliver_sm_resp not sent", "conn", c.gen, "seq", d.SequenceNumber, "err", err)
	}
}

func (c *smppConn) setIOErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ioErr == nil {
		c.ioErr = err
	}
}

// lost is gosmpp's OnClosed: every submit_sm still waiting gets its
// outcome, by whether it was written.
func (c *smppConn) lost(state gosmpp.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.dead = true
	why := fmt.Errorf("connection %d to %s closed (%s)", c.gen, c.s.addr, state.String())
	if c.ioErr != nil {
		why = fmt.Errorf("connection %d to %s closed (%s): %w", c.gen, c.s.addr, state.String(), c.ioErr)
	}
	c.why = why
	for seq, e := range c.pending {
		delete(c.pending, seq)
		if e.resolved {
			continue
		}
		e.resolved = true
		if e.written {
			e.out <- partOutcome{idx: e.idx, kind: partUnconfirmed, err: why}
		} else {
			e.out <- partOutcome{idx: e.idx, kind: partNotSent, err: why}
		}
	}
	close(c.done)
}

func (c *smppConn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

// cause is why the connection was lost.
func (c *smppConn) cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.why == nil {
		return fmt.Errorf("connection %d to %s lost", c.gen, c.s.addr)
	}
	return c.why
}

// close unbinds and closes. It waits for gosmpp's goroutines, up to
// 200 ms for its reader.
func (c *smppConn) close() {
	<-c.ready
	if err := c.sess.Close(); err != nil {
		c.s.log.Debug("smpp: close", "conn", c.gen, "err", err)
	}
}
