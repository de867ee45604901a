package results

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// spareMax bounds the spare files kept per directory; more are deleted.
const spareMax = 256

// spareKeepBytes is the size up to which a spare keeps its old content
// until it is reused; a bigger one is emptied when it is parked.
const spareKeepBytes = 64 << 10

// spareName marks the hidden files the writer owns in results/ and
// replies/: files being written, and spares.
const (
	sparePrefix = ".res-"
	spareSuffix = ".tmp"
)

// atomicFiles writes result files atomically: into a hidden file, then
// renamed over the visible name, so a client never reads half a file.
//
// Where the system allows it (files_linux.go), the rename exchanges the two
// names, and the replaced version, now under the hidden name, is kept as a
// spare and rewritten for a later file, once nothing holds it open any more.
// A flood of small batches otherwise creates and deletes an inode for every
// version of every file. On ext4 without a journal every create scans past
// each inode deleted in the last minutes (they are not reused at once),
// which made these creates half of smsdrop's CPU in the small-file bench.
//
// It is not safe for concurrent use: the Writer calls it under writeMu.
type atomicFiles struct {
	spares map[string][]string // directory → spare files in it
	seq    uint64
	bw     *bufio.Writer
	out    countingWriter
}

// countingWriter counts what reaches the file, so a reused spare is cut to
// the new version's length without asking the file for its offset.
type countingWriter struct {
	f *os.File
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	c.n += int64(n)
	return n, err
}

func newAtomicFiles() *atomicFiles {
	return &atomicFiles{spares: map[string][]string{}, bw: bufio.NewWriterSize(nil, 64<<10)}
}

// write writes dir/name atomically. sync asks for an fsync before the
// rename (files that are not rendered again after a restart). fresh says
// that name most likely does not exist yet (the batch's first write since
// the start): the rename then does not try an exchange first, which fails.
func (a *atomicFiles) write(dir, name string, sync, fresh bool, fill func(*bufio.Writer) error) error {
	f, tmp, reused, err := a.open(dir)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	a.out = countingWriter{f: f}
	a.bw.Reset(&a.out)
	err = fill(a.bw)
	if err == nil {
		err = a.bw.Flush()
	}
	a.bw.Reset(nil)
	if err == nil && reused {
		// A reused spare still holds its old version past the new end.
		err = f.Truncate(a.out.n)
	}
	a.out = countingWriter{}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var swapped bool
		if swapped, err = replace(tmp, filepath.Join(dir, name), fresh); err == nil {
			if swapped {
				a.park(dir, tmp)
			}
			return nil
		}
	}
	os.Remove(tmp)
	return fmt.Errorf("write %s: %w", name, err)
}

// open returns a hidden file in dir to write: a spare when one can be
// reused (reused is then true: it still holds its old content), else a new
// empty one.
func (a *atomicFiles) open(dir string) (f *os.File, p string, reused bool, err error) {
	for s := a.spares[dir]; len(s) > 0; s = a.spares[dir] {
		p := s[len(s)-1]
		a.spares[dir] = s[:len(s)-1]
		if f, err := reuse(p); err == nil {
			return f, p, true, nil
		}
		// Still open somewhere (a download of the old version), linked
		// elsewhere, or gone: it is let go.
		os.Remove(p)
	}
	for {
		a.seq++
		p := filepath.Join(dir, sparePrefix+strconv.FormatInt(time.Now().UnixNano(), 36)+"-"+strconv.FormatUint(a.seq, 36)+spareSuffix)
		f, err := create(p)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", false, err
		}
		return f, p, false, nil
	}
}

// park keeps p, which now holds a replaced version, as a spare of dir.
func (a *atomicFiles) park(dir, p string) {
	if len(a.spares[dir]) >= spareMax {
		os.Remove(p)
		return
	}
	// A spare is disk space the account pays for (quota): a big old version
	// is emptied now, or let go when somebody still reads it.
	if fi, err := os.Lstat(p); err != nil || (fi.Size() > spareKeepBytes && !empty(p)) {
		os.Remove(p)
		return
	}
	a.spares[dir] = append(a.spares[dir], p)
}

// adopt takes the writer's hidden files an earlier run left in dir (its
// spares, or a file a crash interrupted) as spares.
func (a *atomicFiles) adopt(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("adopt spare files: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		ours := strings.HasPrefix(n, sparePrefix) && strings.HasSuffix(n, spareSuffix)
		// Versions before the spares wrote ".NAME.tmp-RANDOM".
		old := strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-")
		if !(ours || old) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, n)
		if !ours || len(a.spares[dir]) >= spareMax {
			os.Remove(p)
			continue
		}
		a.spares[dir] = append(a.spares[dir], p)
	}
	return nil
}
