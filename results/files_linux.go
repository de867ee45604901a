//go:build linux

package results

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

var errNotSpare = errors.New("not a reusable spare")

// reuse opens spare p for rewriting, or fails when p may still be read. Its
// old content is still there: the caller overwrites it and truncates.
//
// A write lease (fcntl F_SETLEASE) is granted only when no other open file
// description of the inode exists, in this process or any other: nobody is
// still reading the version p held. Holding it while p is rewritten makes
// any open meanwhile wait until the file is closed. A link count other than
// 1 means the inode is visible elsewhere (a superseded NAME.<id>.report).
func reuse(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		unix.Close(fd)
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink != 1 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, errNotSpare
	}
	// Not truncated here: write overwrites it and then cuts it to its new
	// length. Truncating a file to 0 makes ext4 start writing it back on
	// close (auto_da_alloc), which costs a flood as much as the fsyncs.
	return os.NewFile(uintptr(fd), p), nil
}

// create makes the new, empty file p, readable by the account whatever the
// umask. Not with os.OpenFile: it offers every file to the network poller,
// which refuses disk files, and that costs four more system calls for each
// result file of each new batch.
func create(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	if err := unix.Fchmod(fd, 0o644); err != nil {
		unix.Close(fd)
		os.Remove(p)
		return nil, &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// empty truncates spare p to nothing, under the same write lease as reuse:
// it fails when p may still be read.
func empty(p string) bool {
	f, err := reuse(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Truncate(0) == nil
}

// replace renames tmp to target. When target exists the two are exchanged
// (renameat2 RENAME_EXCHANGE), which is just as atomic for readers of
// target, and it reports that tmp now holds target's old version. fresh
// skips the exchange, for a target that most likely does not exist: should
// it exist, the plain rename replaces it just as atomically, and its old
// version is deleted instead of kept as a spare.
func replace(tmp, target string, fresh bool) (bool, error) {
	var err error = unix.ENOENT
	if !fresh {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, target, unix.RENAME_EXCHANGE)
	}
	if err == nil {
		return true, nil
	}
	// ENOENT: target does not exist yet. EINVAL, ENOSYS, ENOTSUP: the file
	// system cannot exchange. A plain rename(2), not os.Rename: its lstat
	// of target, there to refuse renaming over a folder, is one more
	// syscall per file in a flood, and rename(2) refuses that itself
	// (EISDIR).
	if err := unix.Renameat(unix.AT_FDCWD, tmp, unix.AT_FDCWD, target); err != nil {
		return false, &os.LinkError{Op: "rename", Old: tmp, New: target, Err: err}
	}
	return false, nil
}
