package ftpd

import (
	"bytes"
	"sync/atomic"
	"testing"
)

// BenchmarkUploadSmall measures one 1 KiB STOR on a persistent, logged-in
// connection: passive data connection, temporary file, fsync, rename and
// the OnUpload callback.
func BenchmarkUploadSmall(b *testing.B) {
	var uploads atomic.Int64
	e := startEnv(b, func(c *Config) {
		c.OnUpload = func(string, string) { uploads.Add(1) }
	})
	c := e.login(userA, passA)
	payload := bytes.Repeat([]byte("T-0123456789abcdef\n"), 1024/19+1)[:1024]
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Stor("bench.txt", bytes.NewReader(payload)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := uploads.Load(); got != int64(b.N) {
		b.Fatalf("OnUpload called %d times for %d uploads", got, b.N)
	}
}
