//go:build linux

package results

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func writeString(t *testing.T, a *atomicFiles, dir, name, body string) {
	t.Helper()
	writeFresh(t, a, dir, name, body, false)
}

func writeFresh(t *testing.T, a *atomicFiles, dir, name, body string, fresh bool) {
	t.Helper()
	err := a.write(dir, name, false, fresh, func(bw *bufio.Writer) error {
		_, err := bw.WriteString(body)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A write told that its target is new renames without trying an exchange
// first. Should the target exist after all (written before a restart), it
// is still replaced whole, and its old version is not kept as a spare.
func TestFreshWrite(t *testing.T) {
	dir := t.TempDir()
	a := newAtomicFiles()
	p := filepath.Join(dir, "sms.txt.report")
	writeFresh(t, a, dir, "sms.txt.report", "version 1\n", true)
	if b, _ := os.ReadFile(p); string(b) != "version 1\n" {
		t.Fatalf("content %q, want version 1", b)
	}
	writeFresh(t, a, dir, "sms.txt.report", "v2\n", true)
	if b, _ := os.ReadFile(p); string(b) != "v2\n" {
		t.Fatalf("content %q, want v2", b)
	}
	if h := hidden(t, dir); len(h) != 0 {
		t.Fatalf("hidden files = %v, want none: a plain rename leaves no spare", h)
	}
	// The next version exchanges, and v2's inode becomes the spare.
	writeString(t, a, dir, "sms.txt.report", "v3\n")
	if h := hidden(t, dir); len(h) != 1 {
		t.Fatalf("hidden files = %v, want v2's inode as the spare", h)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func hidden(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestSpareReused(t *testing.T) {
	dir := t.TempDir()
	a := newAtomicFiles()
	p := filepath.Join(dir, "sms.txt.report")
	writeString(t, a, dir, "sms.txt.report", "version 1 is the longest\n")
	first := inode(t, p)
	writeString(t, a, dir, "sms.txt.report", "v2 is longer\n")
	if inode(t, p) == first {
		t.Fatal("v2 was written into v1's inode while v1 was visible")
	}
	if h := hidden(t, dir); len(h) != 1 {
		t.Fatalf("hidden files after two versions = %v, want the one spare holding v1", h)
	}
	writeString(t, a, dir, "sms.txt.report", "v3\n")
	if got := inode(t, p); got != first {
		t.Fatalf("v3 inode %d, want v1's %d reused", got, first)
	}
	if b, _ := os.ReadFile(p); string(b) != "v3\n" {
		t.Fatalf("content %q, want v3 alone (the spare is truncated)", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
	// A second file takes the spare too: no new inode while one is free.
	writeString(t, a, dir, "other.csv", "x\n")
	if h := hidden(t, dir); len(h) != 0 {
		t.Fatalf("hidden files = %v, want none (the spare became other.csv)", h)
	}
}

func TestSpareStillReadNotReused(t *testing.T) {
	dir := t.TempDir()
	a := newAtomicFiles()
	p := filepath.Join(dir, "sms.txt.csv")
	v1 := strings.Repeat("line of version 1\n", 1000)
	writeString(t, a, dir, "sms.txt.csv", v1)
	// A client starts downloading v1 and is slow.
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 100)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	first := inode(t, p)
	writeString(t, a, dir, "sms.txt.csv", "v2\n")
	writeString(t, a, dir, "sms.txt.csv", "v3\n")
	if inode(t, p) == first {
		t.Fatal("v1's inode was rewritten while a reader had it open")
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(head) + string(rest); got != v1 {
		t.Fatalf("the reader of v1 got %d bytes of something else", len(got))
	}
}

func TestSpareLinkedElsewhereNotReused(t *testing.T) {
	dir := t.TempDir()
	a := newAtomicFiles()
	p := filepath.Join(dir, "sms.txt.report")
	writeString(t, a, dir, "sms.txt.report", "batch: 7\n")
	// supersede keeps the old batch's report under its own name.
	if err := os.Link(p, filepath.Join(dir, "sms.txt.7.report")); err != nil {
		t.Fatal(err)
	}
	writeString(t, a, dir, "sms.txt.report", "batch: 8\nstate: sending\n")
	writeString(t, a, dir, "sms.txt.report", "batch: 8\nstate: done\n")
	if b, _ := os.ReadFile(filepath.Join(dir, "sms.txt.7.report")); string(b) != "batch: 7\n" {
		t.Fatalf("kept report of batch 7 = %q", b)
	}
	if b, _ := os.ReadFile(p); string(b) != "batch: 8\nstate: done\n" {
		t.Fatalf("report = %q", b)
	}
}

func TestAdopt(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".res-abc-1.tmp", ".sms.txt.report.tmp-123", "sms.txt.report", ".profile"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("left\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := newAtomicFiles()
	if err := a.adopt(dir); err != nil {
		t.Fatal(err)
	}
	if h := hidden(t, dir); strings.Join(h, " ") != ".profile .res-abc-1.tmp" {
		t.Fatalf("hidden after adopt = %v, want the old-style temp removed, ours kept, others untouched", h)
	}
	ino := inode(t, filepath.Join(dir, ".res-abc-1.tmp"))
	writeString(t, a, dir, "new.report", "fresh\n")
	if got := inode(t, filepath.Join(dir, "new.report")); got != ino {
		t.Fatal("the adopted spare was not used")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new.report")); string(b) != "fresh\n" {
		t.Fatalf("content %q", b)
	}
}

func TestSpareCap(t *testing.T) {
	dir := t.TempDir()
	a := newAtomicFiles()
	for i := range spareMax + 5 {
		p := filepath.Join(dir, sparePrefix+strconv.Itoa(i)+spareSuffix)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		a.park(dir, p)
	}
	if n := len(a.spares[dir]); n != spareMax {
		t.Fatalf("%d spares kept, want %d", n, spareMax)
	}
	if h := hidden(t, dir); len(h) != spareMax {
		t.Fatalf("%d hidden files left, want the %d beyond the cap deleted", len(h), 5)
	}
}

// The first write of a name renames plainly: nothing replaced, nothing
// parked.
func TestFirstWriteParksNothing(t *testing.T) {
	dir := t.TempDir()
	a := newAtomicFiles()
	writeString(t, a, dir, "sms.txt.csv", "first\n")
	if b, _ := os.ReadFile(filepath.Join(dir, "sms.txt.csv")); string(b) != "first\n" {
		t.Fatalf("content %q, want %q", b, "first\n")
	}
	if h := hidden(t, dir); len(h) != 0 {
		t.Fatalf("hidden files = %v, want none (no exchange, nothing parked)", h)
	}
}

// A big old version is emptied when it is parked (its space counts against
// the account's quota), or let go when a reader still has it.
func TestBigSpareEmptied(t *testing.T) {
	for _, reading := range []bool{false, true} {
		dir := t.TempDir()
		a := newAtomicFiles()
		big := strings.Repeat("a line of a big CSV\n", spareKeepBytes/10)
		writeString(t, a, dir, "big.csv", big)
		if reading {
			r, err := os.Open(filepath.Join(dir, "big.csv"))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
		}
		writeString(t, a, dir, "big.csv", "small now\n")
		h := hidden(t, dir)
		switch {
		case reading && len(h) != 0:
			t.Fatalf("a spare still read was kept: %v", h)
		case !reading && len(h) != 1:
			t.Fatalf("hidden = %v, want one (emptied) spare", h)
		case !reading:
			if fi, err := os.Stat(filepath.Join(dir, h[0])); err != nil || fi.Size() != 0 {
				t.Fatalf("spare of a big version not emptied: %v %v", fi.Size(), err)
			}
		}
	}
}
