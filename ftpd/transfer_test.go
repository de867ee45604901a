package ftpd

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
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
