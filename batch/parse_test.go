package batch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func testSettings() Settings {
	return Settings{Code: "DEMO", Now: func() time.Time { return testNow }}
}

func parseString(t testing.TB, in string, mod func(*Settings)) *Batch {
	t.Helper()
	s := testSettings()
	if mod != nil {
		mod(&s)
	}
	b, err := Parse(strings.NewReader(in), s)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return b
}

func issueStringsOf(is []Issue) []string {
	s := make([]string, len(is))
	for i, x := range is {
		s[i] = x.String()
	}
	return s
}

func checkIssues(t *testing.T, kind string, got []Issue, want []string) {
	t.Helper()
	g := issueStringsOf(got)
	if len(want) == 0 && len(g) == 0 {
		return
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("%s:\n got  %q\n want %q", kind, g, want)
	}
}

// TestParseFileErrors has one row per whole-file rule of SPEC §2 (and the
// few this parser adds for hostile input): the exact errors, each naming
// its line.
func TestParseFileErrors(t *testing.T) {
	const ok = "U-DEMO\nT-Hello\n#-07400123456\n"
	tests := []struct {
		name string
		in   string
		mod  func(*Settings)
		want []string
	}{
		{"unknown line", "U-DEMO\nT-Hello\n#-07400123456\nHello\n", nil,
			[]string{`line 4: unknown line "Hello", expected U-, D-, T- or #-`}},
		{"unknown tag", "U-DEMO\nX-1\nT-Hello\n#-07400123456\n", nil,
			[]string{`line 2: unknown line "X-1", expected U-, D-, T- or #-`}},
		{"lower case tag", "U-DEMO\nT-Hello\nt-world\n#-07400123456\n", nil,
			[]string{`line 3: unknown line "t-world": tags are upper case (U-, D-, T-, #-)`}},
		{"indented tag", "U-DEMO\n T-Hello\nT-Hello\n#-07400123456\n", nil,
			[]string{`line 2: unknown line " T-Hello", expected U-, D-, T- or #-`}},
		{"long unknown line is cut", "U-DEMO\n" + strings.Repeat("é", 50) + "\nT-a\n#-07400123456\n", nil,
			[]string{`line 2: unknown line "` + strings.Repeat("é", 40) + `…", expected U-, D-, T- or #-`}},
		{"recipient before text", "U-DEMO\n#-07400123456\nT-Hello\n#-07400123457\n", nil,
			[]string{"line 2: #- before any text line: put the message's T- lines above its recipients"}},
		{"second U-", ok + "U-DEMO\n", nil,
			[]string{"line 4: second U- line (the first is line 1): a file has exactly one account code"}},
		{"U- not first", "D-2026-11-24\nU-DEMO\nT-Hello\n#-07400123456\n", nil,
			[]string{"line 2: U- after other lines (line 1 has D-): put the U- line first"}},
		{"second D-", "U-DEMO\nD-2026-11-24\nD-2026-11-24\nT-Hello\n#-07400123456\n", nil,
			[]string{"line 3: second D- line (the first is line 2): a file has at most one send date"}},
		{"D- after text", "U-DEMO\nT-Hello\nD-2026-11-24\n#-07400123456\n", nil,
			[]string{"line 3: D- after a text line (line 2): put the D- line before the first T- line"}},
		{"D- after a message", ok + "D-2026-11-24\n", nil,
			[]string{"line 4: D- after a text line (line 2): put the D- line before the first T- line"}},
		{"no U-", "T-Hello\n#-07400123456\n", nil,
			[]string{"no U- line: start the file with U- followed by your account code"}},
		{"no text", "U-DEMO\nD-2026-11-24\n", nil,
			[]string{"no text: add a T- line with the message above its #- recipients"}},
		{"no recipients", "U-DEMO\nT-Hello\nT-world\n", nil,
			[]string{"line 2: message has no recipient: add #- lines below its text"}},
		{"last message without recipients", ok + "T-Bye\n", nil,
			[]string{"line 4: message has no recipient: add #- lines below its text"}},
		{"empty file", "", nil,
			[]string{"file is empty: a drop file needs a U- line, T- text lines and #- recipients"}},
		{"blank file", "\n \r\n\t\n", nil,
			[]string{"file is empty: a drop file needs a U- line, T- text lines and #- recipients"}},
		{"wrong code", "U-OTHER\nT-Hello\n#-07400123456\n", nil,
			[]string{`line 1: U-: "OTHER" is not this account's code: check the code you were given for this account`}},
		{"empty code", "U- \nT-Hello\n#-07400123456\n", nil,
			[]string{"line 1: U-: empty account code: write U- followed by your account code"}},
		{"empty code, any accepted", "U-\nT-Hello\n#-07400123456\n", func(s *Settings) { s.Code = "" },
			[]string{"line 1: U-: empty account code: write U- followed by your account code"}},
		{"invalid date", "U-DEMO\nD-2017-13-45\nT-Hello\n#-07400123456\n", nil,
			[]string{`line 2: D-: invalid date "2017-13-45": write it as 2017-08-04T15:19:21+02:00, 2017-08-04 15:19 or 2017-08-04`}},
		{"date in words", "U-DEMO\nD-tomorrow\nT-Hello\n#-07400123456\n", nil,
			[]string{`line 2: D-: invalid date "tomorrow": write it as 2017-08-04T15:19:21+02:00, 2017-08-04 15:19 or 2017-08-04`}},
		{"date too far ahead", "U-DEMO\nD-2027-11-24T10:00:01Z\nT-Hello\n#-07400123456\n", nil,
			[]string{"line 2: D-: 2027-11-24T10:00:01Z is more than 365 days ahead (max_schedule_ahead): pick an earlier date"}},
		{"date past a short limit", "U-DEMO\nD-2026-11-23T12:00:00Z\nT-Hello\n#-07400123456\n", func(s *Settings) { s.MaxScheduleAhead = 90 * time.Minute },
			[]string{"line 2: D-: 2026-11-23T12:00:00Z is more than 1h30m0s ahead (max_schedule_ahead): pick an earlier date"}},
		{"too many recipients", "U-DEMO\nT-Hello\n#-07400123456\n#-07400123457\nT-Bye\n#-07400123458\n#-07400123459\n", func(s *Settings) { s.MaxRecipients = 2 },
			[]string{"line 6: more than 2 recipient lines (max_recipients; the file has 4): split the file"}},
		{"file too large", ok + "#-07400123457\n", func(s *Settings) { s.MaxFileSize = int64(len(ok) + 3) },
			[]string{"line 4: file larger than max_file_size (32 bytes): split it into several files"}},
		{"line too long", "U-DEMO\nT-" + strings.Repeat("a", MaxLineBytes) + "\nT-b\n#-07400123456\n", nil,
			[]string{"line 2: line longer than 65536 bytes: no line of a drop file can be that long; check it is a text file"}},
		{"message too long", "U-DEMO\nT-" + strings.Repeat("a", 40000) + "\nT-" + strings.Repeat("a", 40000) + "\n#-07400123456\n", nil,
			[]string{"line 2: message text longer than 65536 bytes: no SMS can be that long; shorten it"}},
		{"template over max_segments", "U-DEMO\nT-" + strings.Repeat("a", 161) + " #1#\n#-07400123456;x\n", func(s *Settings) { s.MaxSegments = 1 },
			[]string{"line 2: message is 2 SMS parts long before personalisation, more than max_segments (1): shorten it"}},
		{"utf-16", "\xff\xfeU\x00-\x00", nil,
			[]string{"line 1: file is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8 or Windows-1252"}},
		{"bad recipients rejected", "U-DEMO\nT-Hi\n#-123\n#-+33612345678\n#-07400123456\n#-07400 123456\n#-07400123457\n", func(s *Settings) {
			s.RejectFileOnBadRecipient = true
			s.OptedOut = func(n string) bool { return n == "+447400123457" }
		}, []string{
			`line 3: INVALID_NUMBER: "123" is not a valid phone number (the account rejects files with a bad recipient: fix or remove the line)`,
			"line 4: COUNTRY_NOT_ALLOWED: +33612345678 is outside GB and the account may not send abroad (the account rejects files with a bad recipient: fix or remove the line)",
			"line 6: DUPLICATE: same number and text as line 5: sent once (the account rejects files with a bad recipient: fix or remove the line)",
			"line 7: OPTED_OUT: +447400123457 is on the account's opt-out list (the account rejects files with a bad recipient: fix or remove the line)",
		}},
		{"too long recipient rejected", "U-DEMO\nT-#1#\n#-07400123456;" + strings.Repeat("b", 161) + "\n", func(s *Settings) {
			s.RejectFileOnBadRecipient = true
			s.MaxSegments = 1
		}, []string{
			"line 3: TOO_LONG: the personalised text is 2 SMS parts, more than max_segments (1) (the account rejects files with a bad recipient: fix or remove the line)",
		}},
		{"several errors in line order", "T-a\nU-X\nZ\n", nil, []string{
			"line 1: message has no recipient: add #- lines below its text",
			"line 2: U- after other lines (line 1 has T-): put the U- line first",
			`line 2: U-: "X" is not this account's code: check the code you were given for this account`,
			`line 3: unknown line "Z", expected U-, D-, T- or #-`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := parseString(t, tt.in, tt.mod)
			if b.Valid() {
				t.Fatal("file valid, want invalid")
			}
			checkIssues(t, "errors", b.Errors, tt.want)
		})
	}
}

// TestParseErrorOrder: errors come sorted by line, whole-file ones first.
func TestParseErrorOrder(t *testing.T) {
	b := parseString(t, "T-a\nZ\n#-07400123456\nY\n", nil)
	checkIssues(t, "errors", b.Errors, []string{
		"no U- line: start the file with U- followed by your account code",
		`line 2: unknown line "Z", expected U-, D-, T- or #-`,
		`line 4: unknown line "Y", expected U-, D-, T- or #-`,
	})
}

// TestParseSeedExamples parses the ecoSMS document's examples (§4.2, §4.3
// in both placeholder forms, §4.4) and checks every field of the batch.
func TestParseSeedExamples(t *testing.T) {
	at := func(line, msg int, input, text string) Recipient {
		return Recipient{Line: line, Message: msg, Input: input, Number: "+" + input, Text: text,
			Encoding: EncodingGSM, Segments: 1, Status: StatusWait}
	}
	hello := []Recipient{
		at(5, 1, "447123456789", "Hello M SMITH,\nYou car is ready.\nBest regards"),
		at(6, 1, "441234567891", "Hello Mrs JONES,\nYou car is ready.\nBest regards"),
	}
	tests := []struct {
		file      string
		messages  []Message
		recips    []Recipient
		sendAt    time.Time
		scheduled bool
		warnings  []string
	}{
		{
			file: "seed_4_2.txt",
			messages: []Message{
				{1, 3, "first text message for 3 recipients"},
				{2, 7, "second text message\nfor 2 recipients"},
				{3, 11, "last text message for 3"},
			},
			recips: []Recipient{
				at(4, 1, "447123456789", "first text message for 3 recipients"),
				at(5, 1, "441234567891", "first text message for 3 recipients"),
				at(6, 1, "441234567892", "first text message for 3 recipients"),
				at(9, 2, "441234567893", "second text message\nfor 2 recipients"),
				at(10, 2, "441234567894", "second text message\nfor 2 recipients"),
				at(12, 3, "441234567895", "last text message for 3"),
				at(13, 3, "441234567896", "last text message for 3"),
				at(14, 3, "441234567897", "last text message for 3"),
			},
			sendAt:   testNow,
			warnings: []string{"line 2: D-: 2017-08-04T12:30:00Z is in the past: the messages are sent at once"},
		},
		{
			file:     "seed_4_3_hash.txt",
			messages: []Message{{1, 2, "Hello #1# #2#,\nYou car is ready.\nBest regards"}},
			recips:   hello,
			sendAt:   testNow,
		},
		{
			file:     "seed_4_3_percent.txt",
			messages: []Message{{1, 2, "Hello (%1) (%2),\nYou car is ready.\nBest regards"}},
			recips:   hello,
			sendAt:   testNow,
		},
		{
			file: "scheduled_offset.txt",
			messages: []Message{
				{1, 3, "Your appointment is tomorrow."},
			},
			recips:    []Recipient{{Line: 4, Message: 1, Input: "+44 7400 123456", Number: "+447400123456", Text: "Your appointment is tomorrow.", Encoding: EncodingGSM, Segments: 1, Status: StatusWait}},
			sendAt:    time.Date(2026, 11, 24, 14, 30, 0, 0, time.FixedZone("", 3600)),
			scheduled: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readFixture(t, tt.file)
			s := testSettings()
			s.Code = ""
			b, err := Parse(bytes.NewReader(data), s)
			if err != nil {
				t.Fatal(err)
			}
			checkIssues(t, "errors", b.Errors, nil)
			checkIssues(t, "warnings", b.Warnings, tt.warnings)
			if !reflect.DeepEqual(b.Messages, tt.messages) {
				t.Errorf("messages:\n got  %+v\n want %+v", b.Messages, tt.messages)
			}
			if !reflect.DeepEqual(b.Recipients, tt.recips) {
				t.Errorf("recipients:\n got  %+v\n want %+v", b.Recipients, tt.recips)
			}
			if !b.SendAt.Equal(tt.sendAt) || b.SendAt.Format(time.RFC3339) != tt.sendAt.Format(time.RFC3339) || b.Scheduled != tt.scheduled {
				t.Errorf("send at %v scheduled %v, want %v %v", b.SendAt, b.Scheduled, tt.sendAt, tt.scheduled)
			}
			if b.Segments != len(tt.recips) || b.Decoding != "utf-8" {
				t.Errorf("segments %d decoding %q", b.Segments, b.Decoding)
			}
		})
	}
}

// TestParseDates covers every D- form of SPEC §2, the account time zone,
// and past dates.
func TestParseDates(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	tests := []struct {
		d         string
		loc       *time.Location
		want      string // RFC 3339 of SendAt
		scheduled bool
		warning   string
	}{
		{"2026-12-04T15:19:21+02:00", nil, "2026-12-04T15:19:21+02:00", true, ""},
		{"2026-12-04T15:19:21Z", nil, "2026-12-04T15:19:21Z", true, ""},
		{"2026-12-04T15:19:21", nil, "2026-12-04T15:19:21Z", true, ""},
		{"2026-12-04T15:19", nil, "2026-12-04T15:19:00Z", true, ""},
		{"2026-12-04T15:19+05:30", nil, "2026-12-04T15:19:00+05:30", true, ""},
		{"2026-12-04", nil, "2026-12-04T00:00:00Z", true, ""},
		{"2026-12-04 15:19:21+02:00", nil, "2026-12-04T15:19:21+02:00", true, ""},
		{"2026-12-04 15:19:21", nil, "2026-12-04T15:19:21Z", true, ""},
		{"2026-12-04 15:19", nil, "2026-12-04T15:19:00Z", true, ""},
		{" 2026-12-04 15:19 ", nil, "2026-12-04T15:19:00Z", true, ""},
		{"2026-12-04T15:19:21", paris, "2026-12-04T15:19:21+01:00", true, ""},
		{"2026-12-04", paris, "2026-12-04T00:00:00+01:00", true, ""},
		{"2026-12-04T15:19:21Z", paris, "2026-12-04T15:19:21Z", true, ""},
		{"2026-11-23T10:00:00Z", nil, "2026-11-23T10:00:00Z", false, ""},
		{"2017-08-04T12:30:00", nil, "2026-11-23T10:00:00Z", false, "line 2: D-: 2017-08-04T12:30:00Z is in the past: the messages are sent at once"},
		{"2026-11-23T10:30:00+01:00", nil, "2026-11-23T10:00:00Z", false, "line 2: D-: 2026-11-23T10:30:00+01:00 is in the past: the messages are sent at once"},
		{"2027-11-23T10:00:00Z", nil, "2027-11-23T10:00:00Z", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.d, func(t *testing.T) {
			b := parseString(t, "U-DEMO\nD-"+tt.d+"\nT-Hello\n#-07400123456\n", func(s *Settings) { s.Location = tt.loc })
			checkIssues(t, "errors", b.Errors, nil)
			if got := b.SendAt.Format(time.RFC3339); got != tt.want || b.Scheduled != tt.scheduled {
				t.Errorf("send at %s scheduled %v, want %s %v", got, b.Scheduled, tt.want, tt.scheduled)
			}
			var want []string
			if tt.warning != "" {
				want = []string{tt.warning}
			}
			checkIssues(t, "warnings", b.Warnings, want)
		})
	}
	t.Run("no D-", func(t *testing.T) {
		b := parseString(t, "U-DEMO\nT-Hello\n#-07400123456\n", nil)
		if !b.SendAt.Equal(testNow) || b.Scheduled {
			t.Errorf("send at %v scheduled %v, want now", b.SendAt, b.Scheduled)
		}
	})
	for _, bad := range []string{"2026-02-30", "2026-12-04T25:00", "04/12/2026", "2026-12-04T15:19:21+2", "2026-12-04T", ""} {
		t.Run("invalid "+bad, func(t *testing.T) {
			b := parseString(t, "U-DEMO\nD-"+bad+"\nT-Hello\n#-07400123456\n", nil)
			checkIssues(t, "errors", b.Errors, []string{fmt.Sprintf("line 2: D-: invalid date %q: write it as 2017-08-04T15:19:21+02:00, 2017-08-04 15:19 or 2017-08-04", bad)})
		})
	}
}

// TestParseLayout covers what the file's shape does to messages: line ends,
// blank lines, BOM, the two text tags, messages split by recipients.
func TestParseLayout(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		templates []string
		lines     []int // recipient lines
		code      string
	}{
		{"LF", "U-DEMO\nT-a\nT-b\n#-07400123456\n", []string{"a\nb"}, []int{4}, "DEMO"},
		{"CRLF", "U-DEMO\r\nT-a\r\nT-b\r\n#-07400123456\r\n", []string{"a\nb"}, []int{4}, "DEMO"},
		{"CR", "U-DEMO\rT-a\rT-b\r#-07400123456\r", []string{"a\nb"}, []int{4}, "DEMO"},
		{"mixed ends, no final end", "U-DEMO\rT-a\r\nT-b\n#-07400123456", []string{"a\nb"}, []int{4}, "DEMO"},
		{"CR CR is a blank line", "U-DEMO\r\rT-a\r#-07400123456", []string{"a"}, []int{4}, "DEMO"},
		{"BOM", "\ufeffU-DEMO\nT-a\n#-07400123456\n", []string{"a"}, []int{3}, "DEMO"},
		{"blank lines keep numbering", "\nU-DEMO\n\n  \t\nT-a\n\nT-b\n\n#-07400123456\n", []string{"a\nb"}, []int{9}, "DEMO"},
		{"T> and T-", "U-DEMO\nT>a\nT-b\n#-07400123456\n", []string{"a\nb"}, []int{4}, "DEMO"},
		{"text verbatim", "U-DEMO\nT-  a  \nT-\nT-#-x\n#-07400123456\n", []string{"  a  \n\n#-x"}, []int{5}, "DEMO"},
		{"code case and spaces", "U-  demo \nT-a\n#-07400123456\n", []string{"a"}, []int{3}, "demo"},
		{"messages", "U-DEMO\nT-a\n#-07400123456\n#-07400123457\nT-b\nT-c\n#-07400123458\nT-d\n#-07400123459\n",
			[]string{"a", "b\nc", "d"}, []int{3, 4, 7, 9}, "DEMO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := parseString(t, tt.in, nil)
			checkIssues(t, "errors", b.Errors, nil)
			var templates []string
			for _, m := range b.Messages {
				templates = append(templates, m.Template)
			}
			var lines []int
			for _, r := range b.Recipients {
				lines = append(lines, r.Line)
			}
			if !reflect.DeepEqual(templates, tt.templates) || !reflect.DeepEqual(lines, tt.lines) || b.Code != tt.code {
				t.Errorf("templates %q lines %v code %q, want %q %v %q", templates, lines, b.Code, tt.templates, tt.lines, tt.code)
			}
		})
	}
}

// TestParseEmptyText: an empty message is sent, with a warning.
func TestParseEmptyText(t *testing.T) {
	b := parseString(t, "U-DEMO\nT-\n#-07400123456\n", nil)
	checkIssues(t, "errors", b.Errors, nil)
	checkIssues(t, "warnings", b.Warnings, []string{"line 2: message text is empty: its recipients get an empty SMS"})
	if r := b.Recipients[0]; r.Text != "" || r.Status != StatusWait {
		t.Errorf("recipient %+v", r)
	}
}

// TestParseWindows1252 covers the fallback decoding: with a seekable and a
// non-seekable reader, when the file's first lines are ASCII (both agree)
// and when they are not (the seekable one is read again).
func TestParseWindows1252(t *testing.T) {
	latin := "U-DEMO\nT-Caf\xe9 cr\xe8me \x80\n#-07400123456\n"
	lateBad := "U-DEMO\nT-D\xc3\xa9j\xc3\xa0 vu\nT-na\xefve\n#-07400123456\n"
	const whole = "file is not valid UTF-8 (first bad byte on line %d): read as Windows-1252; save it as UTF-8 to be sure accents come out right"
	const mixed = "file is not valid UTF-8 (first bad byte on line %d): that line and the next read as Windows-1252, earlier ones as UTF-8; save it as UTF-8 to be sure accents come out right"
	tests := []struct {
		name     string
		r        io.Reader
		template string
		warning  string
		decoding string
	}{
		{"utf-8", strings.NewReader("U-DEMO\nT-Café €\n#-07400123456\n"), "Café €", "", "utf-8"},
		{"1252 seekable", strings.NewReader(latin), "Café crème €", fmt.Sprintf(whole, 2), "windows-1252"},
		{"1252 stream", iotest.OneByteReader(strings.NewReader(latin)), "Café crème €", fmt.Sprintf(whole, 2), "windows-1252"},
		{"1252 after UTF-8-looking line, seekable", strings.NewReader(lateBad), "DÃ©jÃ\u00a0 vu\nnaïve", fmt.Sprintf(whole, 3), "windows-1252"},
		{"1252 after UTF-8-looking line, stream", io.MultiReader(strings.NewReader(lateBad)), "Déjà vu\nnaïve", fmt.Sprintf(mixed, 3), "windows-1252"},
		{"1252 with BOM", strings.NewReader("\xef\xbb\xbfU-DEMO\nT-\xe9\n#-07400123456\n"), "é", fmt.Sprintf(whole, 2), "windows-1252"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSettings()
			s.Charset = CharsetUnicode
			b, err := Parse(tt.r, s)
			if err != nil {
				t.Fatal(err)
			}
			checkIssues(t, "errors", b.Errors, nil)
			var want []string
			if tt.warning != "" {
				want = []string{tt.warning}
			}
			checkIssues(t, "warnings", b.Warnings, want)
			if b.Messages[0].Template != tt.template || b.Decoding != tt.decoding {
				t.Errorf("template %q decoding %q, want %q %q", b.Messages[0].Template, b.Decoding, tt.template, tt.decoding)
			}
		})
	}
}

// seekFailer is a reader whose Seek works to report the offset only, as a
// pipe-backed file might.
type seekFailer struct{ io.Reader }

func (s seekFailer) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekCurrent && off == 0 {
		return 0, nil
	}
	return 0, errors.New("cannot seek")
}

// TestParseRewindFailure: a failed rewind is a read failure.
func TestParseRewindFailure(t *testing.T) {
	_, err := Parse(seekFailer{strings.NewReader("U-DEMO\nT-\xc3\xa9\nT-\xe9\n")}, testSettings())
	if err == nil || !strings.Contains(err.Error(), "cannot seek") {
		t.Errorf("error %v, want the seek failure", err)
	}
}

// TestParseReadError: a failing reader is Parse's error, naming the line.
func TestParseReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("U-DEMO\nT-a"), iotest.ErrReader(errors.New("disk on fire")))
	_, err := Parse(r, testSettings())
	if err == nil || err.Error() != "read line 2: disk on fire" {
		t.Errorf("error %v, want read line 2: disk on fire", err)
	}
}

// TestParseSettings: zero settings get the defaults, bad ones an error.
func TestParseSettings(t *testing.T) {
	b, err := Parse(strings.NewReader("U-x\nT-a\n#-07400123456\n#-+33612345678\n"), Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Valid() || b.Recipients[0].Status != StatusWait || b.Recipients[1].Code != CodeCountryNotAllowed || b.Recipients[0].Encoding != EncodingGSM {
		t.Errorf("defaults not applied: %+v %+v", b.Errors, b.Recipients)
	}
	if time.Since(b.SendAt) > time.Hour {
		t.Errorf("send at %v, want about now", b.SendAt)
	}
	if _, err := Parse(strings.NewReader(""), Settings{Charset: "latin1"}); err == nil {
		t.Error("charset latin1 accepted")
	}
	b, err = Parse(strings.NewReader("U-x\nT-a\n#-0612345678\n"), Settings{Country: " fr "})
	if err != nil || b.Recipients[0].Number != "+33612345678" || b.Recipients[0].Status != StatusWait {
		t.Errorf("country fr: %v %+v", err, b.Recipients)
	}
}

// TestPersonalisation covers SPEC §2's placeholders and the warning for
// missing fields, one per recipient line.
func TestPersonalisation(t *testing.T) {
	tests := []struct {
		name     string
		template string
		fields   string // after the number, with its ';'
		want     string
		warning  string
	}{
		{"hash", "Hello #1# #2#", ";M;SMITH", "Hello M SMITH", ""},
		{"percent", "Hello (%1) (%2)", ";M;SMITH", "Hello M SMITH", ""},
		{"mixed and repeated", "#2#/(%2)/#1#", ";a;b", "b/b/a", ""},
		{"plain hashes", "Order #12 ## # #a# #0# (%0) (%a) (% 1) #1", ";x", "Order #12 ## # #a# #0# (%0) (%a) (% 1) #1", ""},
		{"adjacent", "#1##1#(%1)", ";ab", "ababab", ""},
		{"hash before placeholder", "##1#", ";x", "#x", ""},
		{"field 10", "#10#", ";1;2;3;4;5;6;7;8;9;ten", "ten", ""},
		{"six digits is text", "#123456#", ";x", "#123456#", ""},
		{"leading zero is text", "#01#", ";x", "#01#", ""},
		{"fields verbatim", "[#1#]", "; a b ", "[ a b ]", ""},
		{"empty field", "[#1#][#2#]", ";;b", "[][b]", ""},
		{"trailing separator", "[#1#]", ";", "[]", ""},
		{"extra fields ignored", "#1#", ";a;b;c", "a", ""},
		{"missing one", "#1# #2#", ";a", "a ", "line 3: field 2 missing (the line has 1 after the number): left empty in the text"},
		{"missing all", "#1# #3# #2# #3#", "", "   ", "line 3: fields 1, 2, 3 missing (the line has 0 after the number): left empty in the text"},
		{"placeholder across lines is text", "#1\n#", ";x", "#1\n#", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "U-DEMO\nT-" + strings.ReplaceAll(tt.template, "\n", "\nT-") + "\n#-07400123456" + tt.fields + "\n"
			if strings.Contains(tt.template, "\n") {
				tt.warning = strings.Replace(tt.warning, "line 3", "line 4", 1)
			}
			b := parseString(t, in, nil)
			checkIssues(t, "errors", b.Errors, nil)
			if got := b.Recipients[0].Text; got != tt.want {
				t.Errorf("text %q, want %q", got, tt.want)
			}
			var want []string
			if tt.warning != "" {
				want = []string{tt.warning}
			}
			checkIssues(t, "warnings", b.Warnings, want)
		})
	}
}

// TestCharacterWarnings checks where character changes are reported: on
// the template's text line, or on the recipient line whose field brought
// the character, once each however many recipients share them.
func TestCharacterWarnings(t *testing.T) {
	many := "U-DEMO\nT-Côté #1#\nT-fin…\n#-07400999999;Zoë\n"
	for i := range 1000 {
		many += fmt.Sprintf("#-07400%06d;Zoe\n", i)
	}
	tests := []struct {
		name     string
		in       string
		charset  Charset
		texts    []string
		encs     []Encoding
		warnings []string
	}{
		{"template lines", "U-DEMO\nT-Hôtel\nT-fin… 😀\n#-07400123456\n#-07400123457\n", CharsetGSM,
			[]string{"Hotel\nfin... ", "Hotel\nfin... "}, []Encoding{EncodingGSM, EncodingGSM},
			[]string{`line 2: "ô" replaced by "o"`, `line 3: "…" replaced by "..."`, `line 3: "😀" removed`}},
		{"fields", "U-DEMO\nT-Hi #1#!\n#-07400123456;Zoë\n#-07400123457;Ann\n#-07400123458;Zoë 😀\n", CharsetGSM,
			[]string{"Hi Zoe!", "Hi Ann!", "Hi Zoe !"}, []Encoding{EncodingGSM, EncodingGSM, EncodingGSM},
			[]string{`line 3: "ë" replaced by "e"`, `line 5: "ë" replaced by "e"`, `line 5: "😀" removed`}},
		{"template and fields", "U-DEMO\nT-Hôtel #1#\n#-07400123456;Zoë\n#-07400123457\n", CharsetGSM,
			[]string{"Hotel Zoe", "Hotel "}, []Encoding{EncodingGSM, EncodingGSM},
			[]string{`line 2: "ô" replaced by "o"`, `line 3: "ë" replaced by "e"`, "line 4: field 1 missing (the line has 0 after the number): left empty in the text"}},
		{"many recipients, one warning each", many, CharsetGSM, nil, nil,
			[]string{`line 2: "ô" replaced by "o"`, `line 3: "…" replaced by "..."`, `line 4: "ë" replaced by "e"`}},
		{"unicode keeps all", "U-DEMO\nT-Hôtel 😀 #1#\n#-07400123456;Zoë\n", CharsetUnicode,
			[]string{"Hôtel 😀 Zoë"}, []Encoding{EncodingUCS2}, nil},
		{"auto: one field makes UCS-2", "U-DEMO\nT-Hôtel #1#\n#-07400123456;Zoë\n#-07400123457;😀\n", CharsetAuto,
			[]string{"Hotel Zoe", "Hôtel 😀"}, []Encoding{EncodingGSM, EncodingUCS2},
			[]string{`line 2: "ô" replaced by "o"`, `line 3: "ë" replaced by "e"`}},
		{"auto: every recipient UCS-2", "U-DEMO\nT-Hôtel #1#\n#-07400123456;😀\n", CharsetAuto,
			[]string{"Hôtel 😀"}, []Encoding{EncodingUCS2}, nil},
		{"auto: template UCS-2", "U-DEMO\nT-Hôtel 😀 #1#\n#-07400123456;Zoë\n", CharsetAuto,
			[]string{"Hôtel 😀 Zoë"}, []Encoding{EncodingUCS2}, nil},
		{"control characters", "U-DEMO\nT-a\x00b\tc\x7f\n#-07400123456\n", CharsetGSM,
			[]string{"ab c"}, []Encoding{EncodingGSM},
			[]string{`line 2: "\x00" removed`, `line 2: "\t" replaced by " "`, `line 2: "\x7f" removed`}},
		{"message without recipients still checked", "U-DEMO\nT-ô\n", CharsetGSM, nil, nil,
			[]string{`line 2: "ô" replaced by "o"`}},
		// é and è written decomposed (e + U+0301, e + U+0300), as macOS
		// saves them: composed first, they are GSM characters.
		{"decomposed accents, gsm", "U-DEMO\nT-Cafe\u0301 cre\u0300me #1#\n#-07400123456;Zoe\u0308\n", CharsetGSM,
			[]string{"Café crème Zoe"}, []Encoding{EncodingGSM},
			[]string{`line 3: "ë" replaced by "e"`}},
		{"decomposed accents, auto stays gsm", "U-DEMO\nT-Cafe\u0301 cre\u0300me\n#-07400123456\n", CharsetAuto,
			[]string{"Café crème"}, []Encoding{EncodingGSM}, nil},
		{"decomposed accents, unicode verbatim", "U-DEMO\nT-Cafe\u0301 \u2126\n#-07400123456\n", CharsetUnicode,
			[]string{"Cafe\u0301 \u2126"}, []Encoding{EncodingUCS2}, nil},
		{"auto composes before it tries gsm", "U-DEMO\nT-Cafe\u0301 \u2126\n#-07400123456\n", CharsetAuto,
			[]string{"Café \u03a9"}, []Encoding{EncodingGSM}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := parseString(t, tt.in, func(s *Settings) { s.Charset = tt.charset; s.MaxRecipients = 5000 })
			if tt.texts != nil {
				checkIssues(t, "errors", b.Errors, nil)
				for i, r := range b.Recipients {
					if r.Text != tt.texts[i] || r.Encoding != tt.encs[i] {
						t.Errorf("recipient %d: %q %s, want %q %s", i, r.Text, r.Encoding, tt.texts[i], tt.encs[i])
					}
				}
			}
			checkIssues(t, "warnings", b.Warnings, tt.warnings)
		})
	}
}

// TestParseStatuses covers recipient codes, their precedence, and the
// batch's cost.
func TestParseStatuses(t *testing.T) {
	in := "U-DEMO\nT-Hi #1#\n" +
		"#-07400123456;a\n" + // 3 wait
		"#-07400 123456;a\n" + // 4 duplicate of 3
		"#-07400123456;b\n" + // 5 other text: wait
		"#-+33612345678;a\n" + // 6 abroad
		"#-07400123457;a\n" + // 7 opted out
		"#-07400123457;a\n" + // 8 opted out again, not duplicate
		"#-0740012345;a\n" + // 9 invalid
		"#-07400123458;" + strings.Repeat("x", 400) + "\n" + // 10 too long
		"#-07400123458;" + strings.Repeat("x", 400) + "\n" + // 11 too long, not duplicate
		"#-07400123459;" + strings.Repeat("x", 200) + "\n" + // 12 two parts
		"T-Hi #1#\n" +
		"#-07400123456;a\n" // 14 same text, other message: duplicate
	b := parseString(t, in, func(s *Settings) {
		s.MaxSegments = 2
		s.OptedOut = func(n string) bool { return n == "+447400123457" }
	})
	checkIssues(t, "errors", b.Errors, nil)
	type row struct {
		number string
		status Status
		code   string
		segs   int
	}
	want := []row{
		{"+447400123456", StatusWait, "", 1},
		{"+447400123456", StatusKO, CodeDuplicate, 1},
		{"+447400123456", StatusWait, "", 1},
		{"+33612345678", StatusKO, CodeCountryNotAllowed, 1},
		{"+447400123457", StatusKO, CodeOptedOut, 1},
		{"+447400123457", StatusKO, CodeOptedOut, 1},
		{"", StatusKO, CodeInvalidNumber, 1},
		{"+447400123458", StatusKO, CodeTooLong, 3},
		{"+447400123458", StatusKO, CodeTooLong, 3},
		{"+447400123459", StatusWait, "", 2},
		{"+447400123456", StatusKO, CodeDuplicate, 1},
	}
	for i, r := range b.Recipients {
		if got := (row{r.Number, r.Status, r.Code, r.Segments}); got != want[i] {
			t.Errorf("line %d: %+v, want %+v", r.Line, got, want[i])
		}
	}
	if b.Segments != 4 {
		t.Errorf("segments %d, want 4", b.Segments)
	}
}

// TestParseHugeText: a template repeating a long field is capped instead
// of growing without bound.
func TestParseHugeText(t *testing.T) {
	b := parseString(t, "U-DEMO\nT-"+strings.Repeat("#1#", 100)+"\n#-07400123456;"+strings.Repeat("x", 1000)+"\n", nil)
	r := b.Recipients[0]
	if r.Code != CodeTooLong || r.Text != "" || r.Segments != 0 || r.Encoding != EncodingGSM {
		t.Errorf("recipient %+v", r)
	}
	b = parseString(t, "U-DEMO\nT-"+strings.Repeat("a", 40000)+"\nT-"+strings.Repeat("a", 40000)+"\n#-07400123456\n", func(s *Settings) { s.Charset = CharsetUnicode })
	r = b.Recipients[0]
	if b.Valid() || r.Code != CodeTooLong || r.Text != "" || r.Segments != 0 || r.Encoding != EncodingUCS2 {
		t.Errorf("recipient of an over-long template %+v", r)
	}
}

// TestIssueCap: one warning per recipient line, at most MaxIssues kept.
func TestIssueCap(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("U-DEMO\nT-#1# #2#\n")
	for i := range 500 {
		fmt.Fprintf(&sb, "#-07400%06d\n", i)
	}
	for i := range 300 {
		fmt.Fprintf(&sb, "bad %d\n", i)
	}
	b := parseString(t, sb.String(), nil)
	if len(b.Warnings) != MaxIssues+1 || len(b.Errors) != MaxIssues+1 {
		t.Fatalf("%d warnings, %d errors", len(b.Warnings), len(b.Errors))
	}
	if got := b.Warnings[MaxIssues].String(); got != "… 400 more warnings not shown" {
		t.Errorf("last warning %q", got)
	}
	if got := b.Errors[MaxIssues].String(); got != "… 200 more errors not shown" {
		t.Errorf("last error %q", got)
	}
	if got := b.Warnings[0].String(); got != "line 3: fields 1, 2 missing (the line has 0 after the number): left empty in the text" {
		t.Errorf("first warning %q", got)
	}
}

// TestIssueBound: issues past what a report shows are counted, not kept,
// and repeated warnings are counted once.
func TestIssueBound(t *testing.T) {
	var errs issues
	for i := 1; i <= 1000; i++ {
		errs.add(i, "bad")
	}
	errs.add(0, "whole file")
	errs.add(50, "bad")
	if len(errs.list) != MaxIssues+1 || errs.dropped != 900 {
		t.Errorf("%d kept, %d dropped", len(errs.list), errs.dropped)
	}
	got := errs.final("errors")
	if got[0].Line != 0 || got[MaxIssues-1].Line != 99 || got[MaxIssues].Msg != "… 901 more errors not shown" {
		t.Errorf("final: first %v, last kept %v, summary %q", got[0], got[MaxIssues-1], got[MaxIssues].Msg)
	}
	warns := issues{repeats: true}
	for i := 1; i <= 200; i++ {
		warns.add(i, "field")
		warns.add(150, "template")
	}
	if got := warns.final("warnings"); got[MaxIssues].Msg != "… 101 more warnings not shown" {
		t.Errorf("summary %q", got[MaxIssues].Msg)
	}
}

// TestParseManyMessagesOverLimit: past max_recipients nothing more is kept
// (the message whose recipient crossed the limit is the last one).
func TestParseManyMessagesOverLimit(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("U-DEMO\n")
	for range 10_000 {
		sb.WriteString("T-ô\n#-07400123456\n")
	}
	b := parseString(t, sb.String(), func(s *Settings) { s.MaxRecipients = 10 })
	if len(b.Messages) != 11 || len(b.Recipients) != 10 {
		t.Errorf("%d messages, %d recipients kept", len(b.Messages), len(b.Recipients))
	}
	checkIssues(t, "errors", b.Errors, []string{"line 23: more than 10 recipient lines (max_recipients; the file has 10000): split the file"})
}

// TestParseWorkers: the result does not depend on the number of workers.
func TestParseWorkers(t *testing.T) {
	data, _ := benchFile(3000)
	var first *Batch
	for _, w := range []int{1, 2, 7} {
		s := benchSettings()
		s.Workers = w
		s.OptedOut = func(n string) bool { return strings.HasSuffix(n, "7") }
		b, err := Parse(bytes.NewReader(data), s)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
			if len(b.Recipients) != 3000 || b.Segments == 0 {
				t.Fatalf("%d recipients, %d segments", len(b.Recipients), b.Segments)
			}
			continue
		}
		if !reflect.DeepEqual(b, first) {
			t.Errorf("workers %d: batch differs from workers 1", w)
		}
	}
}

// TestParallelPanic: a panic in a worker reaches the caller's goroutine.
func TestParallelPanic(t *testing.T) {
	defer func() {
		if v := recover(); v == nil || !strings.Contains(fmt.Sprint(v), "boom 7") {
			t.Errorf("recovered %v, want boom 7", v)
		}
	}()
	parallel(100, 4, 1, func(_, lo, _ int) {
		if lo == 7 {
			panic(fmt.Sprintf("boom %d", lo))
		}
	})
	t.Error("no panic")
}

// TestParseHostile: inputs no drop file looks like give a report, never a
// panic, and keep memory bounded.
func TestParseHostile(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var lines strings.Builder
	lines.WriteString("U-DEMO\nT-a\n")
	for range 100_000 {
		lines.WriteString("#-\n")
	}
	tests := []struct {
		name  string
		in    []byte
		valid bool
	}{
		{"random bytes", random, false},
		{"NUL bytes", make([]byte, 100_000), false},
		{"NUL lines", bytes.Repeat([]byte("\x00\n"), 1000), false},
		{"3 MB line", append([]byte("U-DEMO\nT-"), bytes.Repeat([]byte("é"), 3<<19)...), false},
		{"3 MB of line ends", bytes.Repeat([]byte("\r"), 3<<20), false},
		{"100,000 lines", []byte(lines.String()), false},
		{"NUL in text", []byte("U-DEMO\nT-\x00\n#-07400123456\n"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Parse(bytes.NewReader(tt.in), testSettings())
			if err != nil {
				t.Fatal(err)
			}
			if b.Valid() != tt.valid || len(b.Errors) > MaxIssues+1 || len(b.Warnings) > MaxIssues+1 {
				t.Errorf("valid %v, %d errors, %d warnings", b.Valid(), len(b.Errors), len(b.Warnings))
			}
		})
	}
}

// TestLineReader covers line ends across buffer boundaries, the line cap
// and the size limit.
func TestLineReader(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		max   int
		limit int64
		want  []string // "+" marks a line cut at max
		over  bool
	}{
		{"empty", "", 10, 100, nil, false},
		{"ends", "a\nb\r\nc\rd", 10, 100, []string{"a", "b", "c", "d"}, false},
		{"blank lines", "\n\r\n\r\r", 10, 100, []string{"", "", "", ""}, false},
		{"LF CR is two ends", "a\n\rb", 10, 100, []string{"a", "", "b"}, false},
		{"cut", "abcdef\nab\n", 3, 100, []string{"abc+", "ab"}, false},
		{"exactly max", "abc\n", 3, 100, []string{"abc"}, false},
		{"limit exact", "ab\ncd\n", 10, 6, []string{"ab", "cd"}, false},
		{"limit one over", "ab\ncd\ne", 10, 6, []string{"ab", "cd"}, true},
		{"limit mid-line", "ab\ncdef\n", 10, 5, []string{"ab"}, true},
		{"CRLF split by limit", "ab\r\n", 10, 3, []string{"ab"}, true},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/onebyte=%v", tt.name, oneByte), func(t *testing.T) {
				var r io.Reader = strings.NewReader(tt.in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				lr := newLineReader(r, tt.max, tt.limit)
				var got []string
				for {
					line, long, err := lr.next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					s := string(line)
					if long {
						s += "+"
					}
					got = append(got, s)
				}
				if !reflect.DeepEqual(got, tt.want) || lr.over != tt.over {
					t.Errorf("got %q over %v, want %q %v", got, lr.over, tt.want, tt.over)
				}
			})
		}
	}
}

// TestSplitTemplate checks the pieces and their offsets.
func TestSplitTemplate(t *testing.T) {
	pieces, has := splitTemplate("Hi #1#, (%2)!")
	want := []piece{{lit: "Hi ", off: 0}, {field: 1, off: 3}, {lit: ", ", off: 6}, {field: 2, off: 8}, {lit: "!", off: 12}}
	if !has || !reflect.DeepEqual(pieces, want) {
		t.Errorf("got %+v %v, want %+v", pieces, has, want)
	}
	pieces, has = splitTemplate("")
	if has || !reflect.DeepEqual(pieces, []piece{{}}) {
		t.Errorf("empty template: %+v %v", pieces, has)
	}
}

// "recipients" counts every recipient line (SPEC §7), also those a
// rejected file does not keep: past max_recipients, or before any text.
func TestRecipientLinesCountsEveryLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		kept int
		want int
	}{
		{"valid", "U-DEMO\nT-hi\n#-07400123456\n#-07400123457\n", 10, 2, 2},
		{"past max_recipients", "U-DEMO\nT-hi\n#-07400123456\n#-07400123457\n#-07400123458\n", 2, 2, 3},
		{"before any text", "U-DEMO\n#-07400123450\nT-hi\n#-07400123456\n", 10, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := parseString(t, tt.in, func(s *Settings) { s.MaxRecipients = tt.max })
			if len(b.Recipients) != tt.kept || b.RecipientLines != tt.want {
				t.Errorf("kept %d, counted %d; want %d and %d", len(b.Recipients), b.RecipientLines, tt.kept, tt.want)
			}
		})
	}
}

// Blank lines are ignored (SPEC §2), whatever spaces they hold: a line of
// no-break spaces, in UTF-8 or as Windows-1252's 0xA0, rejected the file.
func TestBlankLinesOfAnySpace(t *testing.T) {
	for _, tc := range []struct{ name, blank string }{
		{"ascii", " \t "},
		{"no-break space", "\u00a0"},
		{"narrow no-break and ideographic spaces", "\u202f \u3000"},
		{"windows-1252 no-break space", "\xa0 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := parseString(t, "U-DEMO\n"+tc.blank+"\nT-x\n"+tc.blank+"\n#-07400123456\n", nil)
			checkIssues(t, "errors", b.Errors, nil)
			if len(b.Recipients) != 1 {
				t.Fatalf("%d recipients, want 1", len(b.Recipients))
			}
		})
	}
}

// A valid file with nothing to send says so: before, check printed
// "state: valid" and the report "done" with no word that every line was
// refused.
func TestNothingToSendWarns(t *testing.T) {
	const warn = "no recipient can be sent to"
	for _, tc := range []struct {
		name, in string
		want     bool
	}{
		{"every number invalid", "U-DEMO\nT-x\n#-123\n#-abc\n", true},
		{"abroad and a duplicate", "U-DEMO\nT-x\n#-+33612345678\n", true},
		{"one sendable", "U-DEMO\nT-x\n#-123\n#-07400123456\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := parseString(t, tc.in, nil)
			checkIssues(t, "errors", b.Errors, nil)
			got := false
			for _, w := range b.Warnings {
				got = got || strings.Contains(w.Msg, warn)
			}
			if got != tc.want {
				t.Errorf("warning %q: %v, want %v (warnings %v)", warn, got, tc.want, b.Warnings)
			}
		})
	}
}

// A misplaced D- rejects the file: it gets no warning that its messages
// are sent at once, which a user read as contradicting the error.
func TestMisplacedPastDateNoSentAtOnce(t *testing.T) {
	b := parseString(t, "U-DEMO\nT-Hello\nD-2020-01-01\n#-07400123456\n", nil)
	checkIssues(t, "errors", b.Errors, []string{"line 3: D- after a text line (line 2): put the D- line before the first T- line"})
	checkIssues(t, "warnings", b.Warnings, nil)
}

// Only spaces make a line blank: a Windows-1252 line of other bytes (a
// separator of dashes, bullets) is an unknown line. Before, every invalid
// UTF-8 byte counted as the 0xA0 no-break space and such a file passed.
// And with charset unicode an account code saved decomposed still matches:
// only what is sent is kept verbatim.
func TestBlankAndCodeEdges(t *testing.T) {
	for _, in := range []string{"U-DEMO\nT-Hello\n\x93\x94\n#-07400123456\n", "U-DEMO\nT-Hello\n\x96\x96\x96\n#-07400123456\n"} {
		if b := parseString(t, in, nil); len(b.Errors) == 0 {
			t.Errorf("%q: valid, want an unknown line", in)
		}
	}
	b := parseString(t, "U-CAFE\u0301\nT-x\n#-07400123456\n", func(s *Settings) { s.Code = "CAFÉ"; s.Charset = CharsetUnicode })
	checkIssues(t, "errors", b.Errors, nil)
}
