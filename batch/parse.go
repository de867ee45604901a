package batch

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"
)

// Bounds that keep a hostile file from costing more than a legitimate one.
const (
	// MaxNameBytes is the longest drop file name: below the file system's
	// 255 bytes because longer names are derived from it, "<id>_NAME" in
	// scheduled/, archive/ and rejected/, "NAME.<id>.report" in results/.
	// With ids of up to 20 digits those must still fit in 255 bytes.
	MaxNameBytes = 200
	// MaxLineBytes is the longest line Parse reads; a longer one makes the
	// file invalid. A text line that long is far over any max_segments, and
	// reading stops buffering it at this size.
	MaxLineBytes = 64 << 10
	// MaxTextBytes caps a message's template and each personalised text, so
	// that a template repeating a long field many times cannot blow up.
	MaxTextBytes = 64 << 10
	// MaxIssues is how many errors and how many warnings a Batch keeps; the
	// rest are summed up in one last "… N more" entry, so a 100,000-line file
	// with the same mistake on every line still has a readable report.
	MaxIssues = 100
)

// Parse reads a drop file (SPEC §2–§4) and validates it with the settings
// of the account it was dropped in. Content problems never make an error:
// they are Batch.Errors (the whole file is rejected), Batch.Warnings, or a
// recipient's ko status and code. The error is for a failing reader and for
// settings no account can have (an unknown charset).
//
// Decoding: the file is read as UTF-8 (a leading BOM is dropped). At the
// first line that is not valid UTF-8 the whole file is decoded as
// Windows-1252 instead: when every line before it was plain ASCII the two
// readings agree and Parse just carries on; otherwise, if r is an io.Seeker,
// it reads the file again from where it started, and if r cannot seek, the
// earlier lines keep their UTF-8 reading and the warning says so. The input
// is streamed: memory grows with the recipients kept, not with line length
// or file size.
//
// Control characters, NUL included, are data: in a tag line they make the
// line unknown or the value wrong; in a text line they are text, and the
// account charset decides (gsm removes them with a warning, unicode keeps
// them). A line holding only spaces and tabs counts as blank.
//
// Number validation, the costly part, runs on s.Workers goroutines.
func Parse(r io.Reader, s Settings) (*Batch, error) {
	s, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	now := s.Now()
	start := int64(-1)
	seeker, _ := r.(io.Seeker)
	if seeker != nil {
		if off, err := seeker.Seek(0, io.SeekCurrent); err == nil {
			start = off
		}
	}
	p := newParser(s, now, 0)
	restart, err := p.read(r, start >= 0)
	if err != nil {
		return nil, err
	}
	if restart {
		if _, err := seeker.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind the file to read it as Windows-1252: %w", err)
		}
		p = newParser(s, now, p.badLine)
		if _, err := p.read(r, false); err != nil {
			return nil, err
		}
	}
	p.validate()
	return p.finish(), nil
}

// withDefaults fills the zero fields of s with the account defaults.
func (s Settings) withDefaults() (Settings, error) {
	switch s.Charset {
	case "":
		s.Charset = CharsetGSM
	case CharsetGSM, CharsetUnicode, CharsetAuto:
	default:
		return s, fmt.Errorf("batch: charset %q: want gsm, unicode or auto", s.Charset)
	}
	s.Country = strings.ToUpper(strings.TrimSpace(s.Country))
	if s.Country == "" {
		s.Country = DefaultCountry
	}
	if s.MaxSegments <= 0 {
		s.MaxSegments = DefaultMaxSegments
	}
	if s.MaxRecipients <= 0 {
		s.MaxRecipients = DefaultMaxRecipients
	}
	if s.MaxFileSize <= 0 {
		s.MaxFileSize = DefaultMaxFileSize
	}
	if s.MaxScheduleAhead <= 0 {
		s.MaxScheduleAhead = DefaultMaxScheduleAhead
	}
	if s.Location == nil {
		s.Location = time.UTC
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Workers <= 0 {
		s.Workers = runtime.GOMAXPROCS(0)
	}
	return s, nil
}

// lineReader splits a stream into lines ending in LF, CRLF or CR, keeping at
// most max bytes of each and reading at most limit bytes in all.
type lineReader struct {
	br      *bufio.Reader
	max     int
	limit   int64
	read    int64 // bytes consumed, line ends included
	line    int   // number of the line last returned
	buf     []byte
	skipLF  bool // the last line ended in CR: an LF right after belongs to it
	over    bool // the input is longer than limit
	pending bool // bytes of an unterminated line are in buf or were dropped
}

func newLineReader(r io.Reader, max int, limit int64) *lineReader {
	// A small file held in memory needs no 32 KiB buffer: a flood of them
	// would make that most of what the gateway allocates.
	size := 32 << 10
	if l, ok := r.(interface{ Len() int }); ok {
		size = min(size, l.Len()+1)
	}
	// One byte past the limit tells a file of exactly limit bytes from a
	// longer one without reading the rest of a huge upload.
	return &lineReader{br: bufio.NewReaderSize(io.LimitReader(r, limit+1), size), max: max, limit: limit}
}

// next returns the next line without its end, and whether it was longer
// than max (it is then cut to max bytes). The slice is valid until the next
// call. At the end of input, or once the input exceeds the limit (over is
// then set and the partial line dropped), it returns io.EOF.
func (lr *lineReader) next() (line []byte, long bool, err error) {
	lr.buf = lr.buf[:0]
	lr.pending = false
	for {
		chunk, err := lr.br.Peek(max(lr.br.Buffered(), 1))
		if len(chunk) == 0 {
			if err == io.EOF {
				if lr.pending {
					lr.line++
					return lr.buf, long, nil
				}
				return nil, false, io.EOF
			}
			return nil, false, fmt.Errorf("read line %d: %w", lr.line+1, err)
		}
		if lr.skipLF {
			lr.skipLF = false
			if chunk[0] == '\n' {
				if !lr.consume(1) {
					return nil, false, io.EOF
				}
				continue
			}
		}
		end := bytes.IndexByte(chunk, '\n')
		body := chunk
		if end >= 0 {
			body = chunk[:end]
		}
		if cr := bytes.IndexByte(body, '\r'); cr >= 0 {
			end, body = cr, chunk[:cr]
		}
		if room := lr.max - len(lr.buf); len(body) > room {
			lr.buf = append(lr.buf, body[:room]...)
			long = true
		} else {
			lr.buf = append(lr.buf, body...)
		}
		if end < 0 {
			lr.pending = true
			if !lr.consume(len(chunk)) {
				return nil, false, io.EOF
			}
			continue
		}
		lr.skipLF = chunk[end] == '\r'
		if !lr.consume(end + 1) {
			return nil, false, io.EOF
		}
		lr.line++
		return lr.buf, long, nil
	}
}

// consume discards n buffered bytes and reports whether the input is still
// within the limit.
func (lr *lineReader) consume(n int) bool {
	lr.br.Discard(n) // n bytes are buffered: Discard cannot fail
	lr.read += int64(n)
	if lr.read > lr.limit {
		lr.over = true
		return false
	}
	return true
}

// issues collects errors or warnings, each at most once, keeping only what
// a report can show: once MaxIssues are stored, an issue on a later line
// than all of them can never be among the first MaxIssues by line, so it is
// only counted. That keeps a file of a million bad lines from holding a
// million messages.
type issues struct {
	list    []Issue
	seen    map[Issue]struct{}
	maxLine int // highest line in list
	dropped int // issues counted but not kept
	// repeats says identical issues may come again after being dropped
	// (warnings: a template line's change, once per recipient), so dropped
	// ones are remembered to count each once. Errors never repeat, and
	// remembering them would defeat the bound.
	repeats bool
}

func (l *issues) add(line int, format string, args ...any) {
	if l.skip(line) {
		return
	}
	l.addIssue(Issue{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// skip counts an issue of line without keeping it when it would be dropped
// anyway, before the cost of wording it.
func (l *issues) skip(line int) bool {
	if l.repeats || len(l.list) < MaxIssues || line <= l.maxLine {
		return false
	}
	l.dropped++
	return true
}

func (l *issues) addIssue(is Issue) {
	if _, dup := l.seen[is]; dup {
		return
	}
	if l.seen == nil {
		l.seen = make(map[Issue]struct{})
	}
	if len(l.list) >= MaxIssues && is.Line > l.maxLine {
		l.dropped++
		if l.repeats {
			l.seen[is] = struct{}{}
		}
		return
	}
	l.seen[is] = struct{}{}
	l.list = append(l.list, is)
	l.maxLine = max(l.maxLine, is.Line)
}

// final returns the issues in line order (whole-file ones first), at most
// MaxIssues of them plus one entry counting the rest.
func (l *issues) final(noun string) []Issue {
	sort.SliceStable(l.list, func(i, j int) bool { return l.list[i].Line < l.list[j].Line })
	more := l.dropped + max(len(l.list)-MaxIssues, 0)
	if more == 0 {
		return l.list
	}
	return append(l.list[:MaxIssues:MaxIssues], Issue{
		Msg: fmt.Sprintf("… %d more %s not shown", more, noun),
	})
}

// piece is a run of a message template: literal text, or a placeholder.
type piece struct {
	lit   string // literal text, a substring of the template
	off   int    // byte offset of lit in the template
	field int    // 1-based field number of a placeholder; 0 for a literal
}

// changeKey identifies a character change by where the user can fix it.
type changeKey struct {
	line int
	from rune
	to   string
}

func (k changeKey) issue() Issue {
	if k.to == "" {
		return Issue{Line: k.line, Msg: fmt.Sprintf("%q removed", string(k.from))}
	}
	return Issue{Line: k.line, Msg: fmt.Sprintf("%q replaced by %q", string(k.from), k.to)}
}

// message is the parser's view of one message.
type message struct {
	text       strings.Builder
	lineStarts []int // byte offset in the template of each text line
	lineNums   []int // and that line's number
	done       bool  // template complete
	broken     bool  // template over MaxTextBytes: not personalised
	recipients int   // recipient lines, kept or not
	kept       int   // recipient lines kept (within max_recipients)

	pieces    []piece
	hasFields bool
	ref       Encoded     // the template without placeholders, encoded
	refKeys   []changeKey // ref's changes, located
	refShown  bool        // refKeys were added to the warnings
}

// lineOf returns the file line of the template's byte offset off.
func (m *message) lineOf(off int) int {
	i := sort.SearchInts(m.lineStarts, off+1) - 1
	return m.lineNums[max(i, 0)]
}

// recipientInput is what a recipient line leaves for validation.
type recipientInput struct {
	fields string // the line after the number's ';', "" when none
	hasSep bool   // a ';' followed the number
	uniq   int32  // index of the input in parser.inputs
}

// recipientOutput is what a validation worker found for a recipient
// beyond the Recipient fields it fills directly.
type recipientOutput struct {
	useRef bool    // its template changes are exactly the message's
	tooBig bool    // template or personalised text over MaxTextBytes
	issues []Issue // warnings of its own line or template lines
}

// parser holds the state of one reading of a file.
type parser struct {
	s   Settings
	now time.Time
	b   Batch

	cp1252    bool // decode every line as Windows-1252
	multibyte bool // a line read as UTF-8 held a non-ASCII character
	badLine   int  // first line that is not valid UTF-8

	uLine, dLine, textLine, firstTag int
	firstTagName                     string
	overLine                         int // first recipient line over MaxRecipients
	recipientLines                   int

	msgs   []*message
	cur    *message
	after  bool // the last tag line was a recipient
	recs   []recipientInput
	inputs []string
	uniq   map[string]int32
	checks []numberCheck
	outs   []recipientOutput

	errs, warns issues
}

// newParser starts a reading; badLine > 0 means the file is known not to
// be UTF-8 from that line on, and every line is read as Windows-1252.
func newParser(s Settings, now time.Time, badLine int) *parser {
	p := &parser{s: s, now: now, uniq: make(map[string]int32)}
	p.warns.repeats = true
	p.b.Decoding = "utf-8"
	if badLine > 0 {
		p.switchTo1252(badLine, false)
	}
	return p
}

func (p *parser) switchTo1252(line int, mixed bool) {
	p.cp1252, p.badLine = true, line
	p.b.Decoding = "windows-1252"
	msg := "file is not valid UTF-8 (first bad byte on line %d): read as Windows-1252; save it as UTF-8 to be sure accents come out right"
	if mixed {
		msg = "file is not valid UTF-8 (first bad byte on line %d): that line and the next read as Windows-1252, earlier ones as UTF-8; save it as UTF-8 to be sure accents come out right"
	}
	p.warns.add(0, msg, line)
}

// read parses the lines of r. It returns restart when the file turned out
// not to be UTF-8 after lines whose UTF-8 reading differs from their
// Windows-1252 one, and canRestart allows reading it again.
func (p *parser) read(r io.Reader, canRestart bool) (restart bool, err error) {
	lr := newLineReader(r, MaxLineBytes, p.s.MaxFileSize)
	for {
		raw, long, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err
		}
		n := lr.line
		if n == 1 {
			if bytes.HasPrefix(raw, []byte{0xFF, 0xFE}) || bytes.HasPrefix(raw, []byte{0xFE, 0xFF}) {
				p.errs.add(1, "file is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8 or Windows-1252")
				return false, nil
			}
			raw = bytes.TrimPrefix(raw, []byte{0xEF, 0xBB, 0xBF})
		}
		if long {
			p.errs.add(n, "line longer than %d bytes: no line of a drop file can be that long; check it is a text file", MaxLineBytes)
			continue
		}
		if isBlank(raw) {
			continue
		}
		if !p.cp1252 {
			if !utf8.Valid(raw) {
				if p.multibyte && canRestart {
					p.badLine = n
					return true, nil
				}
				p.switchTo1252(n, p.multibyte)
			} else if !p.multibyte && hasNonASCII(raw) {
				p.multibyte = true
			}
		}
		p.line(n, raw)
	}
	if lr.over {
		p.errs.add(lr.line+1, "file larger than max_file_size (%d bytes): split it into several files", p.s.MaxFileSize)
	}
	p.end()
	return false, nil
}

// isBlank reports whether a line holds only spaces: ASCII ones or any
// Unicode space, such as a no-break space, in UTF-8 or as Windows-1252's
// byte 0xA0 (SPEC §2: blank lines are ignored).
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			if !utf8.Valid(b) {
				// Byte by byte: bytes.Trim reads its cut set as UTF-8,
				// and "\xA0" there stands for every invalid byte.
				for _, c := range b {
					if c != ' ' && c != '\t' && c != 0xA0 {
						return false
					}
				}
				return true
			}
			return strings.TrimFunc(string(b), func(r rune) bool { return r == '\t' || unicode.Is(unicode.Zs, r) }) == ""
		}
	}
	return true
}

func hasNonASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// decode turns a line's bytes into text in the file's encoding. UTF-8 text
// is composed (NFC): an accent saved as a letter followed by a combining
// mark, as macOS often writes é, is one character GSM has, not a mark it
// lacks, which gsm mode would remove and auto mode would send as UCS-2; and
// an account code saved so still matches.
func (p *parser) decode(b []byte) string { return p.decodeAs(b, true) }

// decodeText is decode for what is sent (T- lines, #- fields): the unicode
// charset keeps it verbatim, without NFC (SPEC §2, §3).
func (p *parser) decodeText(b []byte) string {
	return p.decodeAs(b, p.s.Charset != CharsetUnicode)
}

func (p *parser) decodeAs(b []byte, compose bool) string {
	if !hasNonASCII(b) {
		return string(b)
	}
	if !p.cp1252 {
		s := string(b)
		if compose && !norm.NFC.IsNormalString(s) {
			s = norm.NFC.String(s)
		}
		return s
	}
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/2)
	for _, c := range b {
		sb.WriteRune(charmap.Windows1252.DecodeByte(c))
	}
	return sb.String()
}

// quote shows a user's value in a message, cut short when long.
func quote(s string) string {
	const runes = 40
	if utf8.RuneCountInString(s) > runes {
		i := 0
		for n := 0; n < runes; n++ {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		}
		s = s[:i] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// line handles one non-blank line.
func (p *parser) line(n int, raw []byte) {
	tag := ""
	if len(raw) >= 2 {
		tag = string(raw[:2])
	}
	switch tag {
	case "U-", "D-", "T-", "T>", "#-":
	default:
		p.unknown(n, raw)
		return
	}
	if tag != "U-" && p.firstTag == 0 {
		p.firstTag, p.firstTagName = n, tag
	}
	if p.overLine > 0 {
		// The file is rejected for its size: what follows is only counted,
		// so that nothing more is kept of it.
		switch tag {
		case "T-", "T>":
			return
		case "#-":
			p.recipientLines++
			return
		}
	}
	switch tag {
	case "U-":
		p.code(n, strings.TrimSpace(p.decode(raw[2:])))
	case "D-":
		p.date(n, strings.TrimSpace(p.decode(raw[2:])))
	case "T-", "T>":
		p.text(n, p.decodeText(raw[2:]))
	case "#-":
		p.recipient(n, p.decodeText(raw[2:]))
	}
}

func (p *parser) unknown(n int, raw []byte) {
	if p.errs.skip(n) {
		return
	}
	upper := strings.ToUpper(string(raw[:min(len(raw), 2)]))
	switch upper {
	case "U-", "D-", "T-", "#-":
		p.errs.add(n, "unknown line %s: tags are upper case (U-, D-, T-, #-)", quote(p.decode(raw)))
	default:
		p.errs.add(n, "unknown line %s, expected U-, D-, T- or #-", quote(p.decode(raw)))
	}
}

func (p *parser) code(n int, code string) {
	switch {
	case p.uLine > 0:
		p.errs.add(n, "second U- line (the first is line %d): a file has exactly one account code", p.uLine)
		return
	case p.firstTag > 0:
		p.errs.add(n, "U- after other lines (line %d has %s): put the U- line first", p.firstTag, p.firstTagName)
	}
	p.uLine = n
	p.b.Code = code
	switch {
	case code == "":
		p.errs.add(n, "U-: empty account code: write U- followed by your account code")
	case p.s.Code != "" && !strings.EqualFold(code, strings.TrimSpace(p.s.Code)):
		p.errs.add(n, "U-: %s is not this account's code: check the code you were given for this account", quote(code))
	}
}

// dateLayouts are the D- forms of SPEC §2, with T; a space in place of the T
// is turned into one first.
var dateLayouts = [...]string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseDate reads a D- value; dates without an offset are in loc.
func parseDate(v string, loc *time.Location) (time.Time, bool) {
	if len(v) > 10 && v[10] == ' ' {
		v = v[:10] + "T" + strings.TrimLeft(v[11:], " ")
	}
	for _, layout := range dateLayouts {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func (p *parser) date(n int, v string) {
	switch {
	case p.dLine > 0:
		p.errs.add(n, "second D- line (the first is line %d): a file has at most one send date", p.dLine)
		return
	case p.textLine > 0:
		p.errs.add(n, "D- after a text line (line %d): put the D- line before the first T- line", p.textLine)
	}
	misplaced := p.textLine > 0
	p.dLine = n
	t, ok := parseDate(v, p.s.Location)
	switch {
	case !ok:
		p.errs.add(n, "D-: invalid date %s: write it as 2017-08-04T15:19:21+02:00, 2017-08-04 15:19 or 2017-08-04", quote(v))
	case t.Sub(p.now) > p.s.MaxScheduleAhead:
		p.errs.add(n, "D-: %s is more than %s ahead (max_schedule_ahead): pick an earlier date", t.Format(time.RFC3339), aheadString(p.s.MaxScheduleAhead))
	case t.After(p.now):
		p.b.SendAt, p.b.Scheduled = t, true
	case t.Before(p.now) && !misplaced: // rejected anyway: nothing is sent at once
		p.warns.add(n, "D-: %s is in the past: the messages are sent at once", t.Format(time.RFC3339))
	}
}

// aheadString writes a max_schedule_ahead for people: whole days as days.
func aheadString(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if days := d / (24 * time.Hour); days != 1 {
			return fmt.Sprintf("%d days", days)
		}
		return "1 day"
	}
	return d.String()
}

func (p *parser) text(n int, t string) {
	if p.textLine == 0 {
		p.textLine = n
	}
	if p.cur == nil || p.after {
		p.closeMessage()
		p.cur = &message{}
		p.msgs = append(p.msgs, p.cur)
		p.b.Messages = append(p.b.Messages, Message{Index: len(p.msgs), Line: n})
		p.after = false
	}
	m := p.cur
	if m.broken {
		return
	}
	if len(m.lineNums) > 0 {
		m.text.WriteByte('\n')
	}
	m.lineStarts = append(m.lineStarts, m.text.Len())
	m.lineNums = append(m.lineNums, n)
	if m.text.Len()+len(t) > MaxTextBytes {
		m.broken = true
		p.errs.add(p.b.Messages[len(p.msgs)-1].Line, "message text longer than %d bytes: no SMS can be that long; shorten it", MaxTextBytes)
		return
	}
	m.text.WriteString(t)
}

func (p *parser) recipient(n int, rest string) {
	if p.cur == nil {
		p.recipientLines++
		p.errs.add(n, "#- before any text line: put the message's T- lines above its recipients")
		return
	}
	if !p.cur.done {
		p.finishTemplate()
	}
	p.after = true
	p.cur.recipients++
	p.recipientLines++
	if p.recipientLines > p.s.MaxRecipients {
		if p.overLine == 0 {
			p.overLine = n
		}
		return
	}
	number, fields, sep := strings.Cut(rest, ";")
	input := strings.TrimSpace(number)
	u, ok := p.uniq[input]
	if !ok {
		u = int32(len(p.inputs))
		p.inputs = append(p.inputs, input)
		p.uniq[input] = u
	}
	p.cur.kept++
	p.recs = append(p.recs, recipientInput{fields: fields, hasSep: sep, uniq: u})
	p.b.Recipients = append(p.b.Recipients, Recipient{Line: n, Message: len(p.msgs), Input: input})
}

// closeMessage checks the message being read is complete.
func (p *parser) closeMessage() {
	if p.cur == nil {
		return
	}
	if !p.cur.done {
		p.finishTemplate()
	}
	if p.cur.recipients == 0 {
		p.errs.add(p.b.Messages[len(p.msgs)-1].Line, "message has no recipient: add #- lines below its text")
	}
}

// finishTemplate splits the current message's template into pieces and
// encodes it without its placeholders: what every recipient gets at least.
func (p *parser) finishTemplate() {
	m := p.cur
	m.done = true
	idx := len(p.msgs) - 1
	tmpl := m.text.String()
	m.text = strings.Builder{}
	p.b.Messages[idx].Template = tmpl
	if m.broken {
		return
	}
	m.pieces, m.hasFields = splitTemplate(tmpl)
	var sb strings.Builder
	var spans []span
	for _, pc := range m.pieces {
		if pc.field == 0 {
			spans = append(spans, span{out: sb.Len(), src: pc.off})
			sb.WriteString(pc.lit)
		}
	}
	stripped := sb.String()
	m.ref = Encode(stripped, p.s.Charset)
	for _, c := range m.ref.Changes {
		j := sort.Search(len(spans), func(i int) bool { return spans[i].out > c.Offset }) - 1
		off := spans[j].src + c.Offset - spans[j].out
		m.refKeys = append(m.refKeys, changeKey{line: m.lineOf(off), from: c.From, to: c.To})
	}
	line := p.b.Messages[idx].Line
	if m.ref.Parts > p.s.MaxSegments {
		p.errs.add(line, "message is %d SMS parts long before personalisation, more than max_segments (%d): shorten it", m.ref.Parts, p.s.MaxSegments)
	}
	if !m.hasFields && strings.TrimSpace(stripped) == "" {
		p.warns.add(line, "message text is empty: its recipients get an empty SMS")
	}
}

// splitTemplate cuts a template into literals and #n# / (%n) placeholders
// (n from 1, at most 5 digits). Any other # or (% is literal text.
func splitTemplate(t string) (pieces []piece, hasFields bool) {
	lit := 0
	for i := 0; i < len(t); {
		n, end := 0, 0
		switch {
		case t[i] == '#':
			n, end = placeholder(t, i+1, '#')
		case t[i] == '(' && i+1 < len(t) && t[i+1] == '%':
			n, end = placeholder(t, i+2, ')')
		}
		if n == 0 {
			i++
			continue
		}
		if i > lit {
			pieces = append(pieces, piece{lit: t[lit:i], off: lit})
		}
		pieces = append(pieces, piece{field: n, off: i})
		hasFields = true
		i, lit = end, end
	}
	if lit < len(t) || len(pieces) == 0 {
		pieces = append(pieces, piece{lit: t[lit:], off: lit})
	}
	return pieces, hasFields
}

// placeholder reads the digits of a placeholder at t[i:] closed by close,
// and returns its field number and where it ends, or 0.
func placeholder(t string, i int, close byte) (n, end int) {
	j := i
	for j < len(t) && j-i < 5 && t[j] >= '0' && t[j] <= '9' {
		n = n*10 + int(t[j]-'0')
		j++
	}
	if j == i || t[i] == '0' || j >= len(t) || t[j] != close {
		return 0, 0
	}
	return n, j + 1
}

// end checks the whole-file rules once every line is read.
func (p *parser) end() {
	p.closeMessage()
	p.b.RecipientLines = p.recipientLines
	if p.uLine == 0 && p.textLine == 0 && p.recipientLines == 0 && len(p.errs.list) == 0 {
		p.errs.add(0, "file is empty: a drop file needs a U- line, T- text lines and #- recipients")
		return
	}
	if p.uLine == 0 {
		p.errs.add(0, "no U- line: start the file with U- followed by your account code")
	}
	if p.textLine == 0 {
		p.errs.add(0, "no text: add a T- line with the message above its #- recipients")
	}
	if p.overLine > 0 {
		p.errs.add(p.overLine, "more than %d recipient lines (max_recipients; the file has %d): split the file", p.s.MaxRecipients, p.recipientLines)
	}
}

// span locates a run of a personalised text: from out, the text comes from
// the template at src, or from a field.
type span struct {
	out   int
	src   int
	field bool
}

// scratch is one validation worker's reusable memory.
type scratch struct {
	buf     []byte
	spans   []span
	fields  []string
	missing []int
}

// validate checks every distinct number and builds every final text on
// s.Workers goroutines, each writing its results by index.
func (p *parser) validate() {
	p.checks = make([]numberCheck, len(p.inputs))
	parallel(len(p.inputs), p.s.Workers, 32, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			p.checks[i] = checkNumber(p.inputs[i], p.s.Country, p.s.International, p.s.OptedOut)
		}
	})
	p.outs = make([]recipientOutput, len(p.recs))
	scratches := make([]scratch, p.s.Workers)
	parallel(len(p.recs), p.s.Workers, 256, func(w, lo, hi int) {
		for i := lo; i < hi; i++ {
			p.personalise(i, &scratches[w])
		}
	})
}

// personalise builds recipient i's final text and records the warnings it
// causes.
func (p *parser) personalise(i int, sc *scratch) {
	r := &p.b.Recipients[i]
	out := &p.outs[i]
	m := p.msgs[r.Message-1]
	if m.broken {
		out.tooBig = true
		r.Encoding = EncodingGSM
		if p.s.Charset == CharsetUnicode {
			r.Encoding = EncodingUCS2
		}
		return
	}
	if !m.hasFields {
		r.Text, r.Encoding, r.Segments = m.ref.Text, m.ref.Encoding, m.ref.Parts
		out.useRef = true
		return
	}
	in := &p.recs[i]
	sc.fields = sc.fields[:0]
	if in.hasSep {
		rest := in.fields
		for {
			f, after, more := strings.Cut(rest, ";")
			sc.fields = append(sc.fields, f)
			if !more {
				break
			}
			rest = after
		}
	}
	sc.buf, sc.spans, sc.missing = sc.buf[:0], sc.spans[:0], sc.missing[:0]
	for _, pc := range m.pieces {
		switch {
		case pc.field == 0:
			sc.spans = append(sc.spans, span{out: len(sc.buf), src: pc.off})
			sc.buf = append(sc.buf, pc.lit...)
		case pc.field <= len(sc.fields):
			sc.spans = append(sc.spans, span{out: len(sc.buf), field: true})
			sc.buf = append(sc.buf, sc.fields[pc.field-1]...)
		default:
			if !containsInt(sc.missing, pc.field) {
				sc.missing = append(sc.missing, pc.field)
			}
		}
		if len(sc.buf) > MaxTextBytes {
			out.tooBig = true
			r.Encoding = m.ref.Encoding
			return
		}
	}
	if len(sc.missing) > 0 {
		out.issues = append(out.issues, Issue{Line: r.Line, Msg: missingMsg(sc.missing, len(sc.fields))})
	}
	enc := Encode(string(sc.buf), p.s.Charset)
	r.Text, r.Encoding, r.Segments = enc.Text, enc.Encoding, enc.Parts

	// Template changes usually repeat the message's own: then the message's
	// warnings stand for them and nothing is kept per recipient.
	k, same := 0, true
	j := 0
	keyOf := func(c Change) (changeKey, bool) {
		for j+1 < len(sc.spans) && sc.spans[j+1].out <= c.Offset {
			j++
		}
		s := sc.spans[j]
		if s.field {
			return changeKey{line: r.Line, from: c.From, to: c.To}, true
		}
		return changeKey{line: m.lineOf(s.src + c.Offset - s.out), from: c.From, to: c.To}, false
	}
	for _, c := range enc.Changes {
		if key, field := keyOf(c); !field {
			if k < len(m.refKeys) && m.refKeys[k] == key {
				k++
			} else {
				same = false
			}
		}
	}
	out.useRef = same && k == len(m.refKeys)
	j = 0
	for _, c := range enc.Changes {
		if key, field := keyOf(c); field || !out.useRef {
			out.issues = append(out.issues, key.issue())
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// missingMsg words the warning of a recipient line short of fields.
func missingMsg(missing []int, have int) string {
	sort.Ints(missing)
	var b strings.Builder
	for i, n := range missing {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d", n)
	}
	noun := "field"
	if len(missing) > 1 {
		noun = "fields"
	}
	return fmt.Sprintf("%s %s missing (the line has %d after the number): left empty in the text", noun, b.String(), have)
}

// parallel calls fn over [0, n) in chunks on up to workers goroutines; w is
// the goroutine's index, for per-worker scratch memory. A panic in fn is
// raised again in the caller's goroutine, where a server can recover it.
func parallel(n, workers, chunk int, fn func(w, lo, hi int)) {
	if n == 0 {
		return
	}
	workers = min(workers, (n+chunk-1)/chunk)
	if workers <= 1 {
		fn(0, 0, n)
		return
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		panicked atomic.Value
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					panicked.CompareAndSwap(nil, fmt.Sprint(v))
					next.Store(int64(n))
				}
			}()
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				fn(w, lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
	if v := panicked.Load(); v != nil {
		panic(v)
	}
}

// dupKey is what makes two recipients the same message.
type dupKey struct{ number, text string }

// finish resolves what needs file order — duplicates, warnings, the cost —
// and returns the batch.
func (p *parser) finish() *Batch {
	b := &p.b
	if !b.Scheduled {
		b.SendAt = p.now
	}
	first := make(map[dupKey]int, len(b.Recipients))
	for i := range b.Recipients {
		r := &b.Recipients[i]
		out := &p.outs[i]
		m := p.msgs[r.Message-1]
		nc := p.checks[p.recs[i].uniq]
		r.Number, r.Code = nc.number, nc.code
		detail := ""
		switch r.Code {
		case CodeInvalidNumber:
			detail = fmt.Sprintf("%s is not a valid phone number", quote(r.Input))
		case CodeCountryNotAllowed:
			detail = fmt.Sprintf("%s is outside %s and the account may not send abroad", r.Number, p.s.Country)
		case CodeOptedOut:
			detail = fmt.Sprintf("%s is on the account's opt-out list", r.Number)
		}
		if r.Code == "" && (out.tooBig || r.Segments > p.s.MaxSegments) {
			r.Code = CodeTooLong
			detail = fmt.Sprintf("the personalised text is %d SMS parts, more than max_segments (%d)", r.Segments, p.s.MaxSegments)
			if out.tooBig {
				detail = fmt.Sprintf("the text is longer than %d bytes", MaxTextBytes)
			}
		}
		if r.Code == "" {
			key := dupKey{r.Number, r.Text}
			if j, dup := first[key]; dup {
				r.Code = CodeDuplicate
				detail = fmt.Sprintf("same number and text as line %d: sent once", b.Recipients[j].Line)
			} else {
				first[key] = i
			}
		}
		if r.Code != "" {
			r.Status = StatusKO
			if p.s.RejectFileOnBadRecipient {
				p.errs.add(r.Line, "%s: %s (the account rejects files with a bad recipient: fix or remove the line)", r.Code, detail)
			}
		} else {
			r.Status = StatusWait
			b.Segments += r.Segments
		}
		if out.useRef && !m.refShown {
			m.refShown = true
			for _, k := range m.refKeys {
				p.warns.addIssue(k.issue())
			}
		}
		for _, is := range out.issues {
			p.warns.addIssue(is)
		}
	}
	// A message nobody receives still had its text checked: show its
	// character changes, where an edit fixes them for every recipient.
	for _, m := range p.msgs {
		if !m.refShown && m.kept == 0 {
			for _, k := range m.refKeys {
				p.warns.addIssue(k.issue())
			}
		}
	}
	if len(b.Recipients) > 0 && b.Segments == 0 && len(p.errs.list) == 0 {
		// Valid, and yet nothing to send: say so, so that a check or a
		// report does not read as a success (every line is ko, each with
		// its code in the CSV).
		p.warns.add(0, "no recipient can be sent to: every recipient line is refused (invalid, abroad, opted out, too long or a duplicate; see the code of each in the CSV)")
	}
	b.Errors = p.errs.final("errors")
	b.Warnings = p.warns.final("warnings")
	return b
}
