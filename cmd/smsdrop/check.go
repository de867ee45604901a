package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"smsdrop/batch"
)

const checkUsage = `usage: smsdrop check [-country CC] [-international] [-charset gsm|unicode|auto] [-code CODE] [-v] FILE...

Validates drop files offline and prints, for each, the report the server
would write. Exit status: 0 when every file is valid, 1 otherwise, 2 on a
usage error.
`

// runCheck is the smsdrop check command (SPEC §11).
func runCheck(args []string, stdout, stderr io.Writer) int {
	return checker{now: time.Now}.run(args, stdout, stderr)
}

// checker runs check with a clock tests can fix.
type checker struct {
	now func() time.Time
}

func (c checker) run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, checkUsage)
		fs.PrintDefaults()
	}
	country := fs.String("country", batch.DefaultCountry, "ISO 3166 alpha-2 `region` national numbers are read in")
	international := fs.Bool("international", false, "allow numbers outside -country")
	charset := fs.String("charset", string(batch.CharsetGSM), "account charset: gsm, unicode or auto")
	code := fs.String("code", "", "account `code` the U- line must match (default: any)")
	verbose := fs.Bool("v", false, "also print the CSV rows each valid file would get")

	files, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error and the usage
	}
	s := batch.Settings{
		Code:          *code,
		Country:       strings.ToUpper(strings.TrimSpace(*country)),
		International: *international,
		Charset:       batch.Charset(*charset),
		Now:           c.now,
	}
	switch {
	case len(files) == 0:
		return usageError(stderr, fs, "no FILE given")
	case !slices.Contains([]batch.Charset{batch.CharsetGSM, batch.CharsetUnicode, batch.CharsetAuto}, s.Charset):
		return usageError(stderr, fs, fmt.Sprintf("-charset %q: use gsm, unicode or auto", *charset))
	case !phonenumbers.GetSupportedRegions()[s.Country]:
		return usageError(stderr, fs, fmt.Sprintf("-country %q: use an ISO 3166 alpha-2 code such as GB, FR or US", *country))
	}

	status := 0
	for i, name := range files {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		valid, err := checkFile(stdout, name, s, *verbose)
		if err != nil {
			fmt.Fprintf(stderr, "smsdrop check: %v\n", err)
			return 1
		}
		if !valid {
			status = 1
		}
	}
	return status
}

// parseInterleaved parses flags placed before, between or after the file
// names (check FILE -v works), and treats everything after "--" as files.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(files, rest...), nil
		}
		if len(rest) == 0 {
			return files, nil
		}
		files = append(files, rest[0])
		args = rest[1:]
	}
}

func usageError(stderr io.Writer, fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(stderr, "smsdrop check: %s\n", msg)
	fs.Usage()
	return 2
}

// checkFile prints one file's report, and its CSV rows when verbose and
// the file is valid (a rejected file gets no CSV, SPEC §7). The error is
// for failing to write stdout only: a file that cannot be read is reported
// as invalid.
func checkFile(stdout io.Writer, name string, s batch.Settings, verbose bool) (valid bool, err error) {
	rep := batch.Report{File: name, State: "invalid"}
	b, readErr := parseFile(name, s)
	if readErr != nil {
		rep.Errors = []string{fmt.Sprintf("cannot read the file: %v; check the path and its permissions", readErr)}
	} else {
		valid = b.Valid()
		rep.Messages, rep.Recipients = len(b.Messages), b.RecipientLines
		// As the server's report: a rejected file costs nothing and is
		// not scheduled.
		if valid {
			rep.State = "valid"
			rep.Segments = b.Segments
			if b.Scheduled {
				rep.Scheduled = b.SendAt
			}
		}
		rep.Errors, rep.Warnings = b.ErrorStrings(), b.WarningStrings()
	}
	if _, err := rep.WriteTo(stdout); err != nil {
		return false, fmt.Errorf("write the report of %s: %w", name, err)
	}
	if !verbose || !valid {
		return valid, nil
	}
	// The rows go to a terminal or a pipe here, so lines end like the
	// report's; the server's NAME.csv uses CRLF as RFC 4180 asks.
	cw := csv.NewWriter(stdout)
	cw.Write(batch.CSVHeader)
	for i := range b.Recipients {
		cw.Write(b.Recipients[i].CSVRow().Record())
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return false, fmt.Errorf("write the CSV rows of %s: %w", name, err)
	}
	return valid, nil
}

func parseFile(name string, s batch.Settings) (*batch.Batch, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", name)
	}
	return batch.Parse(f, s)
}
