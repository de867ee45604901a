//go:build !linux

package results

import (
	"errors"
	"os"
)

// reuse never reuses a spare: without a way to know that nobody still
// reads the version it holds, rewriting it could hand a reader half a file.
func reuse(string) (*os.File, error) { return nil, errors.ErrUnsupported }

// replace renames tmp to target; the old version is deleted.
func replace(tmp, target string, _ bool) (bool, error) { return false, os.Rename(tmp, target) }

// create makes the new, empty file p, readable by the account whatever the
// umask.
func create(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(p)
		return nil, err
	}
	return f, nil
}

// empty never empties a spare (there are none without exchange).
func empty(string) bool { return false }
