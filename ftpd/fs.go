package ftpd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"
)

// Refusals. Each wraps fs.ErrPermission, which the library answers with 550.
var (
	errInboxOnly = fmt.Errorf("%w: only allowed in the top folder", fs.ErrPermission)
	errNoFolders = fmt.Errorf("%w: folders cannot be created or removed", fs.ErrPermission)
	errNoAttrs   = fmt.Errorf("%w: permissions and times cannot be changed", fs.ErrPermission)
	errNoResume  = fmt.Errorf("%w: uploads cannot be appended to or resumed", fs.ErrPermission)
	errNotFile   = fmt.Errorf("%w: not a regular file", fs.ErrPermission)
	errReadOnly  = fmt.Errorf("%w: opened for reading only", fs.ErrPermission)
	errBusy      = fmt.Errorf("%w: the file is being processed; its result will be in results/", fs.ErrPermission)
	// errFailed stands for any error whose text could reveal a host path.
	errFailed = errors.New("operation failed")
)

// clientDriver is one logged-in connection's view of its account directory.
// Every path it receives is the client's slash path; every error it
// returns names only that path, because the library copies error texts into
// its replies and afero's errors carry host paths.
type clientDriver struct {
	s     *Server
	acct  *account
	fs    afero.Fs
	lstat afero.Lstater
	log   *slog.Logger
}

var (
	_ ftpserver.ClientDriver                      = (*clientDriver)(nil)
	_ ftpserver.ClientDriverExtentionFileTransfer = (*clientDriver)(nil)
	_ ftpserver.ClientDriverExtensionFileList     = (*clientDriver)(nil)
	_ ftpserver.ClientDriverExtensionRemoveDir    = (*clientDriver)(nil)
	_ ftpserver.ClientDriverExtensionAllocate     = (*clientDriver)(nil)
)

func newClientDriver(s *Server, acct *account, client uint32) *clientDriver {
	return &clientDriver{
		s:     s,
		acct:  acct,
		fs:    acct.fs,
		lstat: acct.lstat,
		log:   s.log.With("login", acct.Login, "client", client),
	}
}

// cleanPath turns any client path into a clean absolute slash path, so no
// ".." can ever reach afero (whose BasePathFs prefix check would let
// "/../<login>2" into a sibling account).
func cleanPath(name string) string {
	return path.Clean("/" + name)
}

// fail turns err into an error naming only the client path p.
func (d *clientDriver) fail(op, p string, err error) error {
	safe := safeError(err)
	if errors.Is(safe, fs.ErrNotExist) {
		d.log.Debug("ftp file operation failed", "op", op, "path", p, "err", err)
	} else {
		d.log.Warn("ftp file operation failed", "op", op, "path", p, "err", err)
	}
	return &fs.PathError{Op: op, Path: p, Err: safe}
}

// safeError keeps what an error means and drops what it says about the host.
func safeError(err error) error {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, fs.ErrNotExist):
		return fs.ErrNotExist
	case errors.Is(err, fs.ErrPermission):
		return fs.ErrPermission
	case errors.Is(err, fs.ErrExist):
		return fs.ErrExist
	}
	return errFailed
}

// refuse is the error for an operation smsdrop does not allow.
func (d *clientDriver) refuse(op, name string, why error) error {
	p := cleanPath(name)
	d.log.Info("ftp operation refused", "op", op, "path", p, "reason", why.Error())
	return &fs.PathError{Op: op, Path: p, Err: why}
}

// resolve checks every component of a client path with Lstat: hidden names
// and symlinks are reported as missing, so nothing a host user linked into
// the account is ever followed. It returns the clean path and the final
// component's information.
//
// Hidden are the dot names in the folders (the results writer's and the
// intake's temporary files) and the server's temporary uploads in the
// inbox; a client's own dot names in the inbox are not (SPEC §5: a client
// may upload under a temporary dot name and rename it).
func (d *clientDriver) resolve(op, name string) (string, os.FileInfo, error) {
	p := cleanPath(name)
	if p == "/" {
		fi, err := d.fs.Stat(p)
		if err != nil {
			return p, nil, d.fail(op, p, err)
		}
		return p, fi, nil
	}
	parts := strings.Split(p[1:], "/")
	var fi os.FileInfo
	cur := ""
	for i, part := range parts {
		cur += "/" + part
		if hidden(part, i == 0) {
			return p, nil, &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
		}
		var err error
		fi, _, err = d.lstat.LstatIfPossible(cur)
		if err != nil {
			return p, nil, d.fail(op, p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			d.log.Warn("ftp symlink not followed", "op", op, "path", p)
			return p, nil, &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return p, nil, &fs.PathError{Op: op, Path: p, Err: syscall.ENOTDIR}
		}
	}
	return p, fi, nil
}

// hidden reports whether name, in the inbox or in a folder, is the
// server's own and so invisible to the client (see resolve).
func hidden(name string, inInbox bool) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	return !inInbox || name == "." || name == ".." || strings.HasPrefix(name, tempPrefix)
}

// openRead opens a checked path read-only; O_NOFOLLOW closes the window in
// which the last component could be swapped for a symlink after resolve.
func (d *clientDriver) openRead(op, name string) (afero.File, string, os.FileInfo, error) {
	p, fi, err := d.resolve(op, name)
	if err != nil {
		return nil, p, nil, err
	}
	flags := os.O_RDONLY
	if p != "/" {
		// The account root itself may legitimately be a symlink set up by
		// the administrator.
		flags |= noFollow
	}
	f, err := d.fs.OpenFile(p, flags, 0)
	if err != nil {
		return nil, p, nil, d.fail(op, p, err)
	}
	return f, p, fi, nil
}

// Name names the file system in the library's logs.
func (d *clientDriver) Name() string { return "smsdrop" }

// Create is refused: uploads go through GetHandle.
func (d *clientDriver) Create(name string) (afero.File, error) {
	return nil, d.refuse("create", name, errReadOnly)
}

// Mkdir is refused: the account's folders are fixed.
func (d *clientDriver) Mkdir(name string, _ os.FileMode) error {
	return d.refuse("mkdir", name, errNoFolders)
}

// MkdirAll is refused: the account's folders are fixed.
func (d *clientDriver) MkdirAll(name string, _ os.FileMode) error {
	return d.refuse("mkdir", name, errNoFolders)
}

// RemoveAll is refused: only files may be deleted, one at a time.
func (d *clientDriver) RemoveAll(name string) error {
	return d.refuse("remove", name, errNoFolders)
}

// RemoveDir (RMD) is refused: the account's folders are fixed.
func (d *clientDriver) RemoveDir(name string) error {
	return d.refuse("rmdir", name, errNoFolders)
}

// Chmod is refused (SITE CHMOD).
func (d *clientDriver) Chmod(name string, _ os.FileMode) error {
	return d.refuse("chmod", name, errNoAttrs)
}

// Chown is refused (SITE CHOWN).
func (d *clientDriver) Chown(name string, _, _ int) error {
	return d.refuse("chown", name, errNoAttrs)
}

// Chtimes is refused (MFMT, which the library runs even when it does not
// advertise it).
func (d *clientDriver) Chtimes(name string, _, _ time.Time) error {
	return d.refuse("chtimes", name, errNoAttrs)
}

// Stat describes a path without following symlinks.
func (d *clientDriver) Stat(name string) (os.FileInfo, error) {
	_, fi, err := d.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	return fi, nil
}

// Open opens a file or folder for reading.
func (d *clientDriver) Open(name string) (afero.File, error) {
	f, _, _, err := d.openRead("open", name)
	return f, err
}

// OpenFile opens for reading only; uploads go through GetHandle, which
// applies the inbox rules.
func (d *clientDriver) OpenFile(name string, flag int, _ os.FileMode) (afero.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_TRUNC) != 0 {
		return nil, d.refuse("open", name, errReadOnly)
	}
	return d.Open(name)
}

// ReadDir lists a folder, leaving out hidden names (uploads in progress,
// temporary result files), symlinks and anything that is not a plain file
// or folder.
func (d *clientDriver) ReadDir(name string) ([]os.FileInfo, error) {
	f, p, fi, err := d.openRead("list", name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if !fi.IsDir() {
		return nil, &fs.PathError{Op: "list", Path: p, Err: syscall.ENOTDIR}
	}
	all, err := f.Readdir(-1)
	if err != nil {
		return nil, d.fail("list", p, err)
	}
	list := make([]os.FileInfo, 0, len(all))
	for _, e := range all {
		if hidden(e.Name(), p == "/") || !(e.Mode().IsRegular() || e.IsDir()) {
			continue
		}
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	return list, nil
}

// Remove deletes one file (DELE) in any folder and tells the gateway.
func (d *clientDriver) Remove(name string) error {
	p, fi, err := d.resolve("remove", name)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return d.refuse("remove", p, errNoFolders)
	}
	unlock := d.lockInboxNames(p)
	if d.inboxBusy(p) {
		unlock()
		return d.refuse("remove", p, errBusy)
	}
	size := fi.Size()
	if path.Dir(p) == "/" {
		// Measured again under the name's lock: a rename may have put
		// another file there since resolve, and the quota must count
		// what goes (found by review: racing renames and deletes freed
		// the same bytes twice).
		if cur, _, err := d.lstat.LstatIfPossible(p); err == nil {
			size = cur.Size()
		}
	}
	// A symlink swapped in after resolve is only unlinked, never followed.
	err = d.fs.Remove(p)
	unlock()
	if err != nil {
		return d.fail("remove", p, err)
	}
	d.acct.removed(size)
	d.log.Info("ftp delete", "path", p)
	if d.s.cfg.OnDelete != nil {
		d.s.cfg.OnDelete(d.acct.Login, p[1:])
	}
	return nil
}

// Rename (RNFR/RNTO) renames a file of the inbox to another inbox name,
// replacing an existing file of that name.
func (d *clientDriver) Rename(oldname, newname string) error {
	from, to := cleanPath(oldname), cleanPath(newname)
	if path.Dir(from) != "/" {
		return d.refuse("rename", from, errInboxOnly)
	}
	if path.Dir(to) != "/" {
		return d.refuse("rename", to, nameError("files can only be renamed within the top folder"))
	}
	if err := checkName(path.Base(to)); err != nil {
		return d.refuse("rename", to, err)
	}
	_, fi, err := d.resolve("rename", from)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return d.refuse("rename", from, errNotFile)
	}
	if from == to {
		return nil
	}
	unlock := d.lockInboxNames(from, to)
	// What the rename frees, measured under the names' lock (see Remove).
	replaced, err := d.replaceable("rename", to)
	if err != nil {
		unlock()
		return err
	}
	if d.inboxBusy(from) {
		unlock()
		return d.refuse("rename", from, errBusy)
	}
	d.beforePublish(to)
	err = d.fs.Rename(from, to)
	unlock()
	if err != nil {
		return d.fail("rename", from, err)
	}
	d.acct.removed(replaced)
	d.log.Info("ftp rename", "from", from, "to", to)
	d.notifyUpload(to[1:])
	return nil
}

// replaceable checks that an inbox target is absent or a regular file that
// may be replaced, and returns the size it frees.
func (d *clientDriver) replaceable(op, p string) (int64, error) {
	fi, _, err := d.lstat.LstatIfPossible(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, d.fail(op, p, err)
	case !fi.Mode().IsRegular():
		return 0, d.refuse(op, p, nameError("a folder or special file has this name"))
	}
	return fi.Size(), nil
}

// lockInboxNames takes Config.LockInboxNames for those slash paths ps that
// are in the inbox.
func (d *clientDriver) lockInboxNames(ps ...string) (unlock func()) {
	var names []string
	for _, p := range ps {
		if path.Dir(p) == "/" {
			names = append(names, p[1:])
		}
	}
	if d.s.cfg.LockInboxNames == nil || len(names) == 0 {
		return func() {}
	}
	return d.s.cfg.LockInboxNames(d.acct.Login, names...)
}

// beforePublish calls Config.BeforePublish for slash path p, an inbox name
// about to be given to a file.
func (d *clientDriver) beforePublish(p string) {
	if d.s.cfg.BeforePublish != nil && path.Dir(p) == "/" {
		d.s.cfg.BeforePublish(d.acct.Login, p[1:])
	}
}

// inboxBusy reports whether slash path p is an inbox file the gateway is
// processing (Config.InboxBusy).
func (d *clientDriver) inboxBusy(p string) bool {
	return d.s.cfg.InboxBusy != nil && path.Dir(p) == "/" && d.s.cfg.InboxBusy(d.acct.Login, p[1:])
}

func (d *clientDriver) notifyUpload(name string) {
	if d.s.cfg.OnUpload != nil {
		d.s.cfg.OnUpload(d.acct.Login, name)
	}
}

// AllocateSpace (ALLO) refuses sizes the quota could not store. A size
// over max_file_size is not refused: the upload keeps its first bytes and
// the file is rejected with a report (see upload.Write).
func (d *clientDriver) AllocateSpace(size int) error {
	if d.acct.Quota > 0 {
		need := int64(size)
		if d.acct.MaxFileSize > 0 {
			need = min(need, d.acct.MaxFileSize+1)
		}
		d.acct.measure(d.s.clk.Now(), d.log)
		if !d.acct.fits(need) {
			return fmt.Errorf("%w: account quota of %d bytes", ftpserver.ErrStorageExceeded, d.acct.Quota)
		}
	}
	return nil
}

// GetHandle opens a download, or an upload into the inbox under a
// temporary name (see upload).
func (d *clientDriver) GetHandle(name string, flags int, offset int64) (ftpserver.FileTransfer, error) {
	if flags&(os.O_WRONLY|os.O_RDWR) == 0 {
		return d.openDownload(name)
	}
	return d.openUpload(name, flags, offset)
}

func (d *clientDriver) openDownload(name string) (ftpserver.FileTransfer, error) {
	f, p, fi, err := d.openRead("open", name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, d.refuse("open", p, errNotFile)
	}
	return &download{f: f, d: d, p: p}, nil
}

// download is a file being sent; its errors are cleaned like the driver's.
type download struct {
	f afero.File
	d *clientDriver
	p string
}

func (r *download) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, r.d.fail("read", r.p, err)
	}
	// io.EOF must reach io.Copy unwrapped.
	return n, err
}

// WriteTo sends the file to the data connection. Given the *os.File
// beneath the chroot wrapper, io.Copy lets a plain TCP connection use
// sendfile(2), as vsftpd does, instead of a 32 KiB read/write loop.
func (r *download) WriteTo(w io.Writer) (int64, error) {
	var src io.Reader = struct{ io.Reader }{r} // hides WriteTo: no recursion
	if f := osFile(r.f); f != nil {
		src = f
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return n, r.d.fail("read", r.p, err)
	}
	return n, nil
}

// osFile is the *os.File beneath the chroot wrapper of f, or nil.
func osFile(f afero.File) *os.File {
	if bf, ok := f.(*afero.BasePathFile); ok {
		f = bf.File
	}
	of, _ := f.(*os.File)
	return of
}

func (r *download) Write([]byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: r.p, Err: errReadOnly}
}

func (r *download) Seek(offset int64, whence int) (int64, error) {
	n, err := r.f.Seek(offset, whence)
	if err != nil {
		return n, r.d.fail("seek", r.p, err)
	}
	return n, nil
}

func (r *download) Close() error {
	if err := r.f.Close(); err != nil {
		return r.d.fail("close", r.p, err)
	}
	return nil
}
