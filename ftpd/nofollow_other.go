//go:build !unix

package ftpd

// noFollow is unavailable here; the Lstat checks in resolve still refuse
// symlinks, only the race between check and open stays open.
const noFollow = 0
