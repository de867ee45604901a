package batch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// benchRecipients is the size of the benchmark file: fifty times the
// default max_recipients, the volume the parser is sized for.
const benchRecipients = 100_000

// benchFile generates a personalised drop file of n recipients and returns
// it with the numbers as written. The numbers are mostly distinct, in the
// three ways files write them (national with spaces, +44, 44 without +),
// with a few invalid ones, so the number cache gains nothing.
func benchFile(n int) ([]byte, []string) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString("U-DEMO\nD-2026-11-24T08:00:00\nT-Hello #1#, your order #2# is ready\nT-at our Côté store. Reply STOP to opt out.\n")
	names := []string{"Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Thomas", "Roberts"}
	numbers := make([]string, n)
	for i := range n {
		d := 100_000_000 + rng.IntN(900_000_000)
		var num string
		switch i % 5 {
		case 0, 1, 2:
			num = fmt.Sprintf("07%03d %06d", d/1_000_000, d%1_000_000)
		case 3:
			num = fmt.Sprintf("+44 7%09d", d)
		default:
			num = fmt.Sprintf("447%09d", d)
		}
		numbers[i] = num
		fmt.Fprintf(&b, "#-%s;%s;%d\n", num, names[i%len(names)], 100000+i)
	}
	return b.Bytes(), numbers
}

func benchSettings() Settings {
	return Settings{
		Code:          "DEMO",
		MaxRecipients: benchRecipients,
		Now:           func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) },
	}
}

// BenchmarkParse100k parses a 100,000-recipient personalised file with
// Settings.Workers at its default (GOMAXPROCS).
func BenchmarkParse100k(b *testing.B) {
	data, _ := benchFile(benchRecipients)
	s := benchSettings()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		bt, err := Parse(bytes.NewReader(data), s)
		if err != nil {
			b.Fatal(err)
		}
		if !bt.Valid() || len(bt.Recipients) != benchRecipients {
			b.Fatalf("valid %v, %d recipients: %v", bt.Valid(), len(bt.Recipients), bt.Errors)
		}
	}
	b.ReportMetric(float64(benchRecipients)*float64(b.N)/b.Elapsed().Seconds(), "recipients/s")
}

// BenchmarkBareNumberLoop is the yardstick of BenchmarkParse100k: the same
// 100,000 numbers through phonenumbers.Parse and IsValidNumber on one
// goroutine, which is the least any validating parser must spend.
func BenchmarkBareNumberLoop(b *testing.B) {
	_, numbers := benchFile(benchRecipients)
	b.ReportAllocs()
	valid := 0
	for b.Loop() {
		valid = 0
		for _, n := range numbers {
			pn, err := phonenumbers.Parse(n, "GB")
			if err == nil && phonenumbers.IsValidNumber(pn) {
				valid++
			}
		}
	}
	b.ReportMetric(float64(valid), "valid")
	b.ReportMetric(float64(benchRecipients)*float64(b.N)/b.Elapsed().Seconds(), "recipients/s")
}
