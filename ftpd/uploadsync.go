//go:build !smsdrop_nosync

package ftpd

// syncUploads makes every upload durable (fsync) before its "226". Only a
// comparison build for the benchmarks turns it off (uploadsync_off.go).
const syncUploads = true
