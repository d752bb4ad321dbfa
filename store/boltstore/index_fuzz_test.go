package boltstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/kmsring/kmsring/store"
)

// FuzzDueKey: a due index key read from the file either parses to the
// entry whose key it is, or fails with ErrCorrupt; never a panic.
func FuzzDueKey(f *testing.F) {
	for _, e := range []store.DueEntry{
		{KeyID: "8a0c9f1e-2d4b-4c6a-9e1f-0b2c3d4e5f60", Due: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)},
		{KeyID: "x", Due: time.Unix(0, 0).UTC()},
		{KeyID: "kmsring:store", Due: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		f.Add(dueKey(e))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Fuzz(func(t *testing.T, k []byte) {
		e, err := parseDueKey(k)
		if err != nil {
			return
		}
		if !bytes.Equal(dueKey(e), k) {
			t.Fatalf("parseDueKey(%x) = %+v, which encodes as %x", k, e, dueKey(e))
		}
	})
}
