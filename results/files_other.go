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
func replace(tmp, target string) (bool, error) { return false, os.Rename(tmp, target) }

// empty never empties a spare (there are none without exchange).
func empty(string) bool { return false }
