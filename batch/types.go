// Package batch reads and validates drop files in the ecoSMS SMTP/FTP syntax
// (U-, D-, T-, #- lines) and turns them into the messages a sender submits:
// final per-recipient texts, encodings, parts and status codes. It knows files,
// characters and numbers, and nothing of FTP, storage or sending.
package batch

import (
	"fmt"
	"time"
)

// Status is the state of one recipient's message (SPEC §6, seed §2.8).
type Status string

// The six message statuses, in the order reports list them.
const (
	StatusWait Status = "wait" // scheduled or queued
	StatusOn   Status = "on"   // handed to the provider
	StatusOK   Status = "ok"   // delivered
	StatusKO   Status = "ko"   // failed; the code says why
	StatusRep  Status = "rep"  // delivered and answered
	StatusNo   Status = "no"   // final status unknown
)

// Statuses lists every status in report order.
var Statuses = [...]Status{StatusWait, StatusOn, StatusOK, StatusKO, StatusRep, StatusNo}

// Codes that explain a ko or no status.
const (
	CodeInvalidNumber     = "INVALID_NUMBER"
	CodeCountryNotAllowed = "COUNTRY_NOT_ALLOWED"
	CodeOptedOut          = "OPTED_OUT"
	CodeDuplicate         = "DUPLICATE"
	CodeTooLong           = "TOO_LONG"
	CodeUndelivered       = "UNDELIVERED"
	CodeExpired           = "EXPIRED"
	CodeRejected          = "REJECTED"
	CodeCancelled         = "CANCELLED"
	CodeUnconfirmed       = "UNCONFIRMED"
	CodeReceiptTimeout    = "NO_RECEIPT"
)

// Charset is an account's character policy (SPEC §3).
type Charset string

// The three account charsets.
const (
	CharsetGSM     Charset = "gsm"
	CharsetUnicode Charset = "unicode"
	CharsetAuto    Charset = "auto"
)

// Encoding is how one final text goes on the air.
type Encoding string

// The two air encodings; their names are the CSV's encoding column.
const (
	EncodingGSM  Encoding = "gsm"  // GSM 03.38 7-bit, data_coding 0
	EncodingUCS2 Encoding = "ucs2" // UTF-16BE, data_coding 8
)

// Defaults of the per-account limits (SPEC §2, §3, §10).
const (
	DefaultMaxSegments      = 7
	DefaultMaxRecipients    = 2000
	DefaultMaxFileSize      = 10 << 20
	DefaultMaxScheduleAhead = 365 * 24 * time.Hour
	DefaultCountry          = "GB"
)

// Settings are the account settings and environment a parse needs.
type Settings struct {
	// Code is the account code the U- line must match, ignoring case and
	// surrounding spaces. Empty accepts any code (smsdrop check without -code).
	Code string
	// Country is the ISO 3166 alpha-2 region national numbers are read in.
	Country string
	// International allows numbers outside Country.
	International bool
	// Location interprets D- dates without an offset. Nil means UTC.
	Location *time.Location
	// Charset is gsm, unicode or auto.
	Charset Charset
	// MaxSegments caps the parts of one message.
	MaxSegments int
	// MaxRecipients caps the recipient lines of one file.
	MaxRecipients int
	// MaxFileSize caps the bytes of one file.
	MaxFileSize int64
	// MaxScheduleAhead caps how far in the future D- may be.
	MaxScheduleAhead time.Duration
	// RejectFileOnBadRecipient makes any recipient problem reject the file.
	RejectFileOnBadRecipient bool
	// OptedOut reports whether an E.164 number is on the account's opt-out
	// list. Nil means no list. It may be called from several goroutines.
	OptedOut func(e164 string) bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Workers is how many goroutines validate numbers; 0 means GOMAXPROCS.
	Workers int
}

// Issue is one error or warning of a file; it always names its line when
// one is at fault.
type Issue struct {
	Line int // 1-based; 0 when the issue concerns the whole file
	Msg  string
}

// String renders the issue as a report value: "line 5: D-: invalid date ...".
func (i Issue) String() string {
	if i.Line > 0 {
		return fmt.Sprintf("line %d: %s", i.Line, i.Msg)
	}
	return i.Msg
}

// Message is one message of a file: consecutive text lines and the recipient
// lines below them.
type Message struct {
	Index    int    // 1-based message index
	Line     int    // line of its first text line
	Template string // text lines joined with "\n", before personalisation
}

// Recipient is one recipient line and the SMS it gets.
type Recipient struct {
	Line     int      // line number of the #- line
	Message  int      // 1-based index into Batch.Messages
	Input    string   // the number as written
	Number   string   // E.164, empty when invalid
	Text     string   // final text: personalised and, for gsm, transliterated
	Encoding Encoding // gsm or ucs2
	Segments int      // SMS parts of Text
	Status   Status   // wait when it will be sent, ko when rejected at validation
	Code     string   // why it is ko; empty otherwise
}

// Batch is a parsed drop file.
type Batch struct {
	Code       string    // the U- code as written, trimmed
	SendAt     time.Time // when to send: D- (in Location), or now; never before now
	Scheduled  bool      // a D- in the future was given
	Decoding   string    // "utf-8" or "windows-1252"
	Messages   []Message
	Recipients []Recipient // in file order
	// RecipientLines counts every #- line, also those past max_recipients
	// or before any text, which Recipients does not hold: the report's
	// "recipients" (SPEC §7).
	RecipientLines int
	Segments       int     // parts to send for every recipient not rejected at validation
	Errors         []Issue // any error makes the whole file invalid
	Warnings       []Issue
}

// Valid reports whether the file is accepted.
func (b *Batch) Valid() bool { return len(b.Errors) == 0 }
