//go:build linux

package ftpd

import (
	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// now, without waiting: by the time the upload ends and is fsynced, most of
// it is already on disk, so the fsync before the 226 reply is short.
func startWriteback(f afero.File, off, n int64) {
	if of := osFile(f); of != nil {
		_ = unix.SyncFileRange(int(of.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}
}
