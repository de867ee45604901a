//go:build smsdrop_nosync

package ftpd

// syncUploads is off in this build (go build -tags smsdrop_nosync): an
// upload acknowledged with "226" can be lost in a power cut. It exists so
// that bench/small_files.sh can show what that fsync costs, in the same run;
// never deploy it. The server says so when it starts.
const syncUploads = false
