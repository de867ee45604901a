package ftpd

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Large transfers take the fast paths (a 1 MiB upload buffer, sendfile for
// downloads): the bytes must come back exactly, also from an offset.
func TestLargeTransfersRoundTrip(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(userA, passA)
	data := make([]byte, 9<<20+12345)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := c.Stor("big.part", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	r, err := c.Retr("big.part")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("download differs: %d bytes, want %d", len(got), len(data))
	}
	const off = 5<<20 + 7
	r, err = c.RetrFrom("big.part", off)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[off:]) {
		t.Fatalf("resumed download differs: %d bytes, want %d", len(got), len(data)-off)
	}
}

// The size limits must hold to the byte on uploads that span several
// writeback chunks and copy buffers, and an accepted file must be exact.
func TestLargeUploadLimits(t *testing.T) {
	const size = 2*writebackChunk + 12345
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name    string
		maxSize int64
		quota   int64
		want    int // reply code, 0 for success
	}{
		{"no limits", 0, 0, 0},
		{"file size limit just above", size, 0, 0},
		{"quota crossed after the first chunk", 0, writebackChunk + writebackChunk/2, 552},
		{"quota exactly the file", 0, size, 0},
		{"quota one byte short", 0, size - 1, 552},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, func(c *Config) {
				c.Accounts[0].MaxFileSize = tt.maxSize
				c.Accounts[0].Quota = tt.quota
			})
			c := e.login(userA, passA)
			err := c.Stor("big.part", bytes.NewReader(data))
			if got := replyCode(err); got != tt.want {
				t.Fatalf("STOR %d bytes: %v, want code %d", size, err, tt.want)
			}
			names := files(t, e.dir(userA))
			if tt.want != 0 {
				if len(names) != 0 {
					t.Fatalf("inbox after a refused upload: %v", names)
				}
				return
			}
			got, err := os.ReadFile(filepath.Join(e.dir(userA), "big.part"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("stored file differs: %d bytes, want %d", len(got), len(data))
			}
		})
	}
}

// An upload that stops sending times out after idle_timeout, like an idle
// session: the library kept the session alive while the transfer was open
// and set no deadline on data connections, so the upload held its
// connection slot, its temporary file and a 1 MiB buffer for good (found
// by review). Nothing of it is kept.
func TestStalledUploadTimesOut(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	r := dialRaw(t, e.addr, "")
	r.login(userA, passA)
	data := r.openData()
	if code, msg := r.cmd("STOR slow.txt"); code != 150 {
		t.Fatalf("STOR: %d %s", code, msg)
	}
	if _, err := data.Write([]byte("U-")); err != nil {
		t.Fatal(err)
	}
	// Nothing more is sent: the server ends the transfer with an error.
	code, msg := r.read()
	if code < 400 {
		t.Fatalf("stalled upload answered %d %s, want an error", code, msg)
	}
	if left := files(t, e.dir(userA)); len(left) != 0 {
		t.Errorf("left in the inbox: %v", left)
	}
}
