package ftpd

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"

	"smsdrop/batch"
)

const (
	// maxNameLen is the longest name an upload may have (see
	// batch.MaxNameBytes).
	maxNameLen = batch.MaxNameBytes
	// tempPrefix and tempSuffix frame TempName's names: hidden, and ending
	// in ".part", so that either of the watcher's ignore rules skips them.
	tempPrefix = ".upload-"
	tempSuffix = ".smsdrop.part"
	// tempHintLen bounds the part of the real name kept in a temporary name
	// (for operators looking at the inbox), so it never gets too long.
	tempHintLen = 64
	// usageTTL is how long a measured account size is trusted; the gateway
	// also writes and deletes in the account (results, retention), which
	// the server only learns about by measuring again.
	usageTTL = time.Minute
	// uploadPerm keeps uploaded files private to smsdrop's user and group.
	uploadPerm = 0o640
)

var errShuttingDown = errors.New("server shutting down")

// TempName returns a new hidden temporary name for an upload to name: it
// starts with ".upload-", ends with ".smsdrop.part" and is random in
// between, with a shortened, cleaned copy of name for operators.
func TempName(name string) string {
	hint := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, strings.ToValidUTF8(name, "_"))
	if len(hint) > tempHintLen {
		cut := tempHintLen
		for cut > 0 && !utf8.RuneStart(hint[cut]) {
			cut--
		}
		hint = hint[:cut]
	}
	return tempPrefix + rand.Text()[:16] + "-" + hint + tempSuffix
}

func isTempName(name string) bool {
	return strings.HasPrefix(name, tempPrefix) && strings.HasSuffix(name, tempSuffix)
}

// nameError wraps ErrFileNameNotAllowed, which the library answers with 553.
func nameError(reason string) error {
	return fmt.Errorf("%w: %s", ftpserver.ErrFileNameNotAllowed, reason)
}

// checkName says why a plain name may not be given to a file in the inbox.
func checkName(name string) error {
	switch {
	case name == "" || name == "/":
		return nameError("empty name")
	case len(name) > maxNameLen:
		return nameError(fmt.Sprintf("longer than %d bytes", maxNameLen))
	case !utf8.ValidString(name):
		return nameError("not valid UTF-8")
	case name == "." || name == "..":
		return nameError("not a file name")
	case strings.HasPrefix(name, tempPrefix):
		// SPEC §5 lets a client upload under a dot name and rename it;
		// only the server's own temporary names are reserved.
		return nameError("reserved prefix " + tempPrefix)
	case strings.ContainsAny(name, `/\`):
		return nameError("no folder separators allowed")
	case strings.ContainsFunc(name, unicode.IsControl):
		return nameError("control characters are not allowed")
	case strings.HasSuffix(name, tempSuffix):
		return nameError("reserved suffix " + tempSuffix)
	}
	return nil
}

// account is an Account with what the server keeps about it: its chrooted
// file system and its measured size for the quota.
type account struct {
	Account
	fs    afero.Fs
	lstat afero.Lstater

	mu           sync.Mutex
	passed       bool              // passedDigest is set
	passedDigest [sha256.Size]byte // of the last password that passed; see checkPassword
	used         int64             // bytes on disk, uploads in progress excluded
	inflight     int64             // bytes written so far by uploads in progress
	measured     bool
	measuredAt   time.Time
}

func (a *account) allows(ip netip.Addr) bool {
	if len(a.AllowNets) == 0 {
		return true
	}
	for _, p := range a.AllowNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// measure walks the account directory when the last measure is stale.
func (a *account) measure(now time.Time, log *slog.Logger) {
	if a.Quota == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.measured && now.Sub(a.measuredAt) < usageTTL {
		return
	}
	var total int64
	err := filepath.WalkDir(a.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == a.Dir {
				return err
			}
			return nil // an unreadable entry cannot be counted; go on
		}
		// Uploads in progress are counted in inflight, not here.
		if !e.Type().IsRegular() || isTempName(e.Name()) {
			return nil
		}
		if info, err := e.Info(); err == nil {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		log.Warn("ftp quota: cannot measure account", "err", err)
		return
	}
	a.used, a.measured, a.measuredAt = total, true, now
}

// fits says whether n more bytes stay within the quota.
func (a *account) fits(n int64) bool {
	if a.Quota == 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used+a.inflight+n <= a.Quota
}

// reserve counts n bytes about to be written, unless they exceed the quota.
func (a *account) reserve(n int64) bool {
	if a.Quota == 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used+a.inflight+n > a.Quota {
		return false
	}
	a.inflight += n
	return true
}

func (a *account) unreserve(n int64) {
	if a.Quota == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight = max(a.inflight-n, 0)
}

// commit moves a finished upload's bytes from inflight to used, minus the
// file it replaced.
func (a *account) commit(written, replaced int64) {
	if a.Quota == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight = max(a.inflight-written, 0)
	a.used = max(a.used+written-replaced, 0)
}

func (a *account) removed(n int64) {
	if a.Quota == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.used = max(a.used-n, 0)
}

func (a *account) quotaError() error {
	return fmt.Errorf("%w: account quota of %d bytes reached", ftpserver.ErrStorageExceeded, a.Quota)
}

func (d *clientDriver) openUpload(name string, flags int, offset int64) (ftpserver.FileTransfer, error) {
	p := cleanPath(name)
	if flags&os.O_APPEND != 0 || offset != 0 {
		return nil, d.refuse("stor", p, errNoResume)
	}
	if path.Dir(p) != "/" {
		return nil, d.refuse("stor", p, nameError("uploads go to the top folder only"))
	}
	base := p[1:]
	if err := checkName(base); err != nil {
		return nil, d.refuse("stor", p, err)
	}
	if _, err := d.replaceable("stor", p); err != nil {
		return nil, err
	}
	if d.acct.Quota > 0 {
		d.acct.measure(d.s.clk.Now(), d.log)
		if !d.acct.fits(0) {
			return nil, d.refuse("stor", p, d.acct.quotaError())
		}
	}
	if !d.s.beginWork() {
		return nil, d.refuse("stor", p, errShuttingDown)
	}
	temp := "/" + TempName(base)
	f, err := d.fs.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, uploadPerm)
	if err != nil {
		d.s.active.Done()
		return nil, d.fail("stor", p, err)
	}
	return &upload{d: d, f: f, p: p, temp: temp}, nil
}

// upload writes a STOR under a temporary name; Close gives the file its
// real name only when every write succeeded and the library reported no
// transfer error, and removes it otherwise.
type upload struct {
	d       *clientDriver
	f       afero.File
	p       string // "/" + real name
	temp    string // "/" + temporary name
	written int64
	dropped int64 // bytes read past MaxFileSize+1 and not stored
	flushed int64 // bytes handed to startWriteback
	err     error // first failure; the upload is dropped when set
	closed  bool
}

var (
	_ ftpserver.FileTransfer      = (*upload)(nil)
	_ ftpserver.FileTransferError = (*upload)(nil)
)

// Write stores b unless it would pass the account's quota, which fails the
// upload (552) while it streams. Past max_file_size it keeps one byte more
// than the limit and drops the rest: the file is then rejected with a
// report saying it is too large (SPEC §2), as a file dropped locally is,
// instead of a 552 that leaves a legacy client without any result file.
func (u *upload) Write(b []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	all := len(b)
	acct := u.d.acct
	if acct.MaxFileSize > 0 && u.written+int64(len(b)) > acct.MaxFileSize+1 {
		keep := max(acct.MaxFileSize+1-u.written, 0)
		u.dropped += int64(len(b)) - keep
		b = b[:keep]
		if len(b) == 0 {
			return all, nil
		}
	}
	n := int64(len(b))
	if !acct.reserve(n) {
		u.err = &fs.PathError{Op: "stor", Path: u.p, Err: acct.quotaError()}
		return 0, u.err
	}
	m, err := u.f.Write(b)
	u.written += int64(m)
	if u.written-u.flushed >= writebackChunk {
		startWriteback(u.f, u.flushed, u.written-u.flushed)
		u.flushed = u.written
	}
	if int64(m) < n {
		acct.unreserve(n - int64(m))
	}
	if err != nil {
		u.err = u.d.fail("stor", u.p, err)
		return m, u.err
	}
	return all, nil
}

// writebackChunk is how much an upload writes before it starts the
// writeback of what it wrote.
const writebackChunk = 8 << 20

// uploadBuf is the size of an upload's copy buffer: io.Copy's 32 KiB costs
// a write(2) and often a goroutine park per 32 KiB; a socket read fills
// more of a larger buffer when data is waiting.
const uploadBuf = 1 << 20

// ReadFrom copies the data connection into the file through a large
// reused buffer; io.Copy prefers it to its own 32 KiB loop. Every chunk
// goes through Write, so the size limits apply while the upload streams.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	bp, _ := u.d.s.copyBufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, uploadBuf)
		bp = &b
	}
	defer u.d.s.copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			m, werr := u.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		switch {
		case errors.Is(rerr, io.EOF):
			return total, nil
		case rerr != nil:
			return total, rerr
		}
	}
}

// Read fails: an upload handle is write-only.
func (u *upload) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: u.p, Err: fs.ErrPermission}
}

// Seek allows only seeks that do not move: uploads are never resumed.
func (u *upload) Seek(offset int64, whence int) (int64, error) {
	if (whence == io.SeekCurrent && offset == 0) || (whence == io.SeekStart && offset == u.written) {
		return u.written, nil
	}
	return 0, &fs.PathError{Op: "seek", Path: u.p, Err: errNoResume}
}

// TransferError records that the data connection failed (ABOR, reset,
// I/O error): the upload must not be kept.
func (u *upload) TransferError(err error) {
	if u.err == nil {
		u.err = err
	}
}

// Close publishes or drops the upload. On success the gateway is told
// before the client receives its "226".
func (u *upload) Close() error {
	if u.closed {
		return u.err
	}
	u.closed = true
	defer u.d.s.active.Done()
	published := false
	if u.err == nil {
		u.err = u.publish()
		published = u.err == nil
	}
	if published && syncUploads {
		// Durable before the 226, its name included, with one fsync made
		// after the rename: syncing the file then also makes its new name
		// durable on Linux's file systems (ext4 without a journal writes
		// the new entry's directory blocks, journaled ones commit the
		// rename with it). Synced before the rename, the file could be
		// found after a power cut under its hidden name, which nothing
		// picks up. The gateway may read it meanwhile: from the page cache.
		if err := u.f.Sync(); err != nil {
			u.err = u.d.fail("stor", u.p, err)
		}
	}
	if err := u.f.Close(); err != nil && u.err == nil {
		u.err = u.d.fail("stor", u.p, err)
	}
	if u.err != nil {
		drop := u.temp
		if published {
			// Not acknowledged, so not kept (unless the gateway took it
			// already: a retry is then recognised as a duplicate).
			drop = u.p
			u.d.acct.removed(u.written)
		} else {
			u.d.acct.unreserve(u.written)
		}
		if err := u.d.fs.Remove(drop); err != nil && !errors.Is(err, fs.ErrNotExist) {
			u.d.log.Error("ftp upload: file not removed", "path", drop, "err", err)
		}
		u.d.log.Info("ftp upload dropped", "path", u.p, "bytes", u.written, "err", u.err)
		return u.err
	}
	if u.dropped > 0 {
		u.d.log.Warn("ftp upload over max_file_size: its first bytes kept, to be rejected with a report",
			"path", u.p, "bytes", u.written+u.dropped, "kept", u.written, "max_file_size", u.d.acct.MaxFileSize)
	} else {
		u.d.log.Info("ftp upload", "path", u.p, "bytes", u.written)
	}
	u.d.notifyUpload(u.p[1:])
	return nil
}

// publish renames the temporary file over the real name.
func (u *upload) publish() error {
	unlock := u.d.lockInboxNames(u.p)
	// Checked again, under the name's lock: a folder may have appeared
	// under that name meanwhile, and what the upload replaces is what the
	// quota frees (see Remove).
	replaced, err := u.d.replaceable("stor", u.p)
	if err != nil {
		unlock()
		return err
	}
	u.d.beforePublish(u.p)
	err = u.d.fs.Rename(u.temp, u.p)
	unlock()
	if err != nil {
		return u.d.fail("stor", u.p, err)
	}
	u.d.acct.commit(u.written, replaced)
	return nil
}
