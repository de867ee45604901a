// Package sender defines how smsdrop hands messages to an SMS provider and
// hears back from it. Drivers are named after what they talk to: Sim (an
// embedded simulated provider) and, later, SMPP.
package sender

import (
	"context"
	"errors"
	"fmt"
	"time"

	"smsdrop/batch"
)

// Message is one recipient's SMS handed to a provider.
type Message struct {
	ID       string // smsdrop's message id, the CSV's message_id ("<batch>-<line>")
	Account  string // account login
	Batch    uint64
	Line     int
	To       string // E.164
	From     string // the account's sender_id, may be empty
	Text     string // final text
	Encoding batch.Encoding
	Segments int
	// Deadline is the batch's validity end (zero: none): a provider that
	// can be told stops trying to deliver then.
	Deadline time.Time
}

// Result is the outcome of handing one Message over.
type Result struct {
	// PartIDs are the provider's ids, one per part, when Err is nil.
	PartIDs []string
	// Err is nil when the provider accepted every part. A *Error says
	// whether to retry.
	Err error
}

// Error is a provider's refusal of a message.
type Error struct {
	Code      string // for the CSV's code column when permanent, e.g. REJECTED:0x0000000B
	Temporary bool   // throttled, queue full, connection lost: retry later
	Err       error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return e.Code
}

func (e *Error) Unwrap() error { return e.Err }

// IsTemporary reports whether err is worth retrying. Errors that are not a
// *Error (a cancelled context, a dropped connection) are temporary.
func IsTemporary(err error) bool {
	var se *Error
	if errors.As(err, &se) {
		return se.Temporary
	}
	return err != nil
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	Receipt EventKind = iota + 1 // a delivery receipt for one part
	Reply                        // a mobile-originated message
)

// Event is something the provider told us after a hand-over.
type Event struct {
	Kind EventKind
	// PartID is the provider id of the part a receipt is about.
	PartID string
	// Status is ok, ko or no for a receipt.
	Status batch.Status
	// Code explains a ko or no receipt (UNDELIVERED, EXPIRED, ...).
	Code string
	// From is the E.164 number a reply comes from.
	From string
	// To is the address a reply was sent to (our sender id or number).
	To string
	// Account, when the provider knows it, narrows reply matching.
	Account string
	// Text is a reply's text.
	Text string
	// At is when the provider reported it.
	At time.Time
}

// EventHandler stores events. A driver acknowledges events to its provider
// only after the handler returned nil, so a crash cannot lose one.
type EventHandler func(ctx context.Context, events []Event) error

// Sender is a provider driver.
type Sender interface {
	// Send hands msgs over and returns one Result per message, in order.
	// It may hand several messages over concurrently.
	Send(ctx context.Context, msgs []Message) []Result
	// Run delivers receipts and replies to h until ctx is done.
	Run(ctx context.Context, h EventHandler) error
	// Close releases the driver's connections and files.
	Close() error
}

// IDLearner is a driver that matches receipts to the ids its provider
// gave at hand-over through what it remembers of them (SMPP, whose SMSCs
// may write an id in hex in one place and in decimal in the other). The
// gateway tells it, at start-up, the ids still waiting for a receipt.
type IDLearner interface {
	// LearnIDs remembers ids, given oldest first, as if just handed over.
	LearnIDs(ids []string)
}

// MaxLearnedIDs is how many ids an IDLearner remembers; more are useless.
const MaxLearnedIDs = smppIDIndexSize
