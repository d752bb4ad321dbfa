//go:build linux

package main

import (
	"bytes"
	"encoding/gob"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kmsring/kmsring/store"
)

// gobStream is a gob stream of the messages that encode vs.
func gobStream(t testing.TB, vs ...any) []byte {
	var b bytes.Buffer
	enc := gob.NewEncoder(&b)
	for _, v := range vs {
		require.NoError(t, enc.Encode(v))
	}
	return b.Bytes()
}

func TestGobFrames(t *testing.T) {
	stream := gobStream(t, CtlWrite{Rec: store.Record{KeyID: "k", Data: make([]byte, 300)}}, "x", []store.Version{{Number: 1, Data: []byte("v")}})
	f := newGobFrames(unbounded)
	for _, c := range stream { // a byte at a time: lengths split across reads
		require.NoError(t, f.feed([]byte{c}))
	}
	assert.Zero(t, f.left, "the stream ends at a message's end")
	assert.Empty(t, f.hdr, "the stream ends at a message's end")

	// The largest message is 300 bytes and more: a bound below refuses it.
	f = newGobFrames(300)
	assert.ErrorIs(t, f.feed(stream), errControlTooLarge)
	assert.ErrorIs(t, f.feed([]byte{1}), errControlTooLarge, "a refusal is final")

	f = newGobFrames(unbounded)
	assert.ErrorIs(t, f.feed([]byte{0xf7}), errControlTooLarge, "a length of 9 bytes is malformed")
}

// TestAttackControlReplyOversized: a listener of the store owner's user
// that announces a reply over the command's bound is refused on the
// length alone: the command neither waits for the bytes nor allocates
// for them.
func TestAttackControlReplyOversized(t *testing.T) {
	storePath := filepath.Join(controlDir(t), "s.db")
	ln, err := net.Listen("unix", storePath+controlSuffix)
	require.NoError(t, err)
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Read(make([]byte, 4096)) // the request, before the reply
		// 0xfc: four bytes of length follow, maxControlReply+1.
		n := uint32(maxControlReply + 1)
		c.Write([]byte{0xfc, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		<-done
	}()
	rs, err := dialControl(storePath)
	require.NoError(t, err)
	defer rs.Close()
	_, err = rs.List(t.Context())
	assert.ErrorIs(t, err, errControlTooLarge)
}

// TestControlRequestOversized: a command whose request is over serve's
// bound is told so before anything is sent, rather than finding the
// connection closed.
func TestControlRequestOversized(t *testing.T) {
	storePath := filepath.Join(controlDir(t), "s.db")
	st := &fakeControlStore{}
	stop, err := listenControl(storePath, &ControlService{st: st, changed: func(string) {}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer stop()
	rs, err := dialControl(storePath)
	require.NoError(t, err)
	defer rs.Close()
	err = rs.AppendAudit(t.Context(), []store.AuditEntry{{Seq: 1, Data: make([]byte, maxControlRequest)}})
	assert.ErrorIs(t, err, errControlTooLarge)
	assert.Contains(t, err.Error(), "over 67108864")
	assert.Zero(t, st.appends.Load())
}

// FuzzGobFrames: following a stream in pieces is following it whole, and
// a stream of gob messages ends at a message's end.
func FuzzGobFrames(f *testing.F) {
	f.Add(gobStream(f, CtlWrite{Rec: store.Record{KeyID: "k", Data: make([]byte, 300)}}), 7, uint64(1000))
	f.Add(gobStream(f, "x", 1, []byte("y")), 1, uint64(10))
	f.Add([]byte{0xfc, 0x10, 0, 0, 1}, 2, uint64(maxControlReply))
	f.Fuzz(func(t *testing.T, b []byte, step int, bound uint64) {
		whole := newGobFrames(bound)
		werr := whole.feed(b)
		parts := newGobFrames(bound)
		var perr error
		step = max(1, min(step&0xff, len(b)))
		for i := 0; i < len(b) && perr == nil; i += step {
			perr = parts.feed(b[i:min(i+step, len(b))])
		}
		require.Equal(t, werr, perr)
		if werr == nil {
			assert.Equal(t, whole.left, parts.left)
			assert.Equal(t, whole.hdr, parts.hdr)
		}
	})
}
