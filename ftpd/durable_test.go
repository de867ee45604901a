package ftpd

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/afero"
)

// opLog records the file operations an upload makes, in order.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(op string) {
	l.mu.Lock()
	l.ops = append(l.ops, op)
	l.mu.Unlock()
}

type loggedFs struct {
	afero.Fs
	log *opLog
}

func (f loggedFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	file, err := f.Fs.OpenFile(name, flag, perm)
	if err != nil || flag&os.O_CREATE == 0 {
		return file, err
	}
	return loggedFile{File: file, log: f.log}, nil
}

func (f loggedFs) Rename(oldname, newname string) error {
	f.log.add("rename")
	return f.Fs.Rename(oldname, newname)
}

type loggedFile struct {
	afero.File
	log *opLog
}

func (f loggedFile) Sync() error {
	f.log.add("sync")
	return f.File.Sync()
}

func (f loggedFile) Close() error {
	f.log.add("close")
	return f.File.Close()
}

// The fsync that makes an upload durable comes after the rename to its real
// name: it then makes that name durable too. Synced under its hidden name
// and renamed afterwards, a file could be found after a power cut under the
// hidden name, which nothing picks up.
func TestUploadSyncedAfterItsRename(t *testing.T) {
	e := startEnv(t, nil)
	log := &opLog{}
	acct := e.srv.accounts[userA]
	acct.fs = loggedFs{Fs: acct.fs, log: log}
	c := e.login(userA, passA)
	if err := c.Stor("sms.txt", strings.NewReader("U-DEMO\nT-x\n#-447123450001\n")); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	got := strings.Join(log.ops, " ")
	log.mu.Unlock()
	if got != "rename sync close" {
		t.Fatalf("upload did %q, want \"rename sync close\"", got)
	}
}
