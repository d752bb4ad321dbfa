package kmsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
)

func testRootKey(t testing.TB) tink.AEAD {
	rk, err := keyring.NewRootKey(make([]byte, keyring.RootKeySize))
	require.NoError(t, err)
	return rk
}

func TestCreateAccessKey(t *testing.T) {
	ctx := context.Background()
	st, rk := memstore.New(), testRootKey(t)
	a, err := CreateAccessKey(ctx, st, rk, "alice", false)
	require.NoError(t, err)
	assert.Regexp(t, `^AKIA[A-Z2-7]{16}$`, a.ID)
	assert.Regexp(t, `^[A-Za-z0-9+/]{40}$`, a.SecretAccessKey())
	assert.Equal(t, "arn:aws:iam::000000000000:user/alice", a.ARN("000000000000"))

	// Another process sharing the store: a cache miss reads it.
	keys := newAccessKeys(st, rk, keyring.RealClock(), time.Second)
	got, err := keys.get(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, a.SecretAccessKey(), got.SecretAccessKey())
	assert.Equal(t, "alice", got.Principal)
	assert.False(t, got.Admin)

	b, err := CreateAccessKey(ctx, st, rk, "alice", true)
	require.NoError(t, err)
	assert.NotEqual(t, a.ID, b.ID)
	assert.NotEqual(t, a.SecretAccessKey(), b.SecretAccessKey())

	_, err = keys.get(ctx, "AKIAAAAAAAAAAAAAAAAA")
	assert.ErrorIs(t, err, errUnknownAccessKey)
	_, err = keys.get(ctx, "not-an-id")
	assert.ErrorIs(t, err, errUnknownAccessKey)

	_, err = loadAccessKey(ctx, st, testRootKeyOther(t), a.ID)
	assert.Error(t, err, "another root key cannot unwrap the secret")
}

func testRootKeyOther(t testing.TB) tink.AEAD {
	k := make([]byte, keyring.RootKeySize)
	k[0] = 1
	rk, err := keyring.NewRootKey(k)
	require.NoError(t, err)
	return rk
}

func TestCreateAccessKeyRejectsPrincipal(t *testing.T) {
	for _, p := range []string{"", "a b", "a/b", "ü", string(make([]byte, 65))} {
		_, err := CreateAccessKey(context.Background(), memstore.New(), testRootKey(t), p, false)
		assert.ErrorIs(t, err, ErrInvalidPrincipal, "%q", p)
	}
}

// A store writer without the root key can neither grant admin, nor move a
// secret to another principal, nor move it to another key ID.
func TestAccessKeyTamperDetected(t *testing.T) {
	ctx := context.Background()
	rk := testRootKey(t)
	for name, tamper := range map[string]func(d *accessKeyDoc){
		"grant admin":     func(d *accessKeyDoc) { d.Admin = true },
		"other principal": func(d *accessKeyDoc) { d.Principal = "root" },
		"flip a bit":      func(d *accessKeyDoc) { d.Secret[len(d.Secret)-1] ^= 1 },
	} {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			a, err := CreateAccessKey(ctx, st, rk, "alice", false)
			require.NoError(t, err)
			rewrite(t, st, a.ID, a.ID, tamper)
			_, err = loadAccessKey(ctx, st, rk, a.ID)
			assert.Error(t, err)
			assert.NotErrorIs(t, err, errUnknownAccessKey)
		})
	}
	t.Run("secret moved to another key ID", func(t *testing.T) {
		st := memstore.New()
		a, err := CreateAccessKey(ctx, st, rk, "alice", true)
		require.NoError(t, err)
		b, err := CreateAccessKey(ctx, st, rk, "bob", true)
		require.NoError(t, err)
		rewrite(t, st, a.ID, b.ID, func(*accessKeyDoc) {})
		_, err = loadAccessKey(ctx, st, rk, b.ID)
		assert.Error(t, err)
	})
}

// rewrite stores the access key record of from, changed by fn, as the
// record of to.
func rewrite(t *testing.T, st store.Store, from, to string, fn func(d *accessKeyDoc)) {
	ctx := context.Background()
	src, err := st.Get(ctx, accessKeyRecordPrefix+from)
	require.NoError(t, err)
	var d accessKeyDoc
	require.NoError(t, json.Unmarshal(src.Data, &d))
	fn(&d)
	dst, err := st.Get(ctx, accessKeyRecordPrefix+to)
	require.NoError(t, err)
	dst.Data, err = json.Marshal(d)
	require.NoError(t, err)
	_, err = st.Update(ctx, dst, nil)
	require.NoError(t, err)
}

func TestAccessKeyNeverPrintsSecret(t *testing.T) {
	a, err := CreateAccessKey(context.Background(), memstore.New(), testRootKey(t), "alice", true)
	require.NoError(t, err)
	j, err := json.Marshal(a)
	require.NoError(t, err)
	jp, err := json.Marshal(&a)
	require.NoError(t, err)
	for _, s := range []string{
		a.String(), fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s %q %x", a, a, a, a, a, a),
		fmt.Sprintf("%v %+v %#v", &a, &a, &a), string(j), string(jp),
	} {
		assert.NotContains(t, s, a.SecretAccessKey())
		assert.Contains(t, s, a.ID)
	}
}

// TestAccessKeyRecordHostile: a store writer plants access key records that
// are huge, truncated, not JSON or of another format. Each fails as corrupt
// (not as an unknown key), without a root key call for what cannot be
// parsed, without a panic, and without the record's bytes in the message;
// the request path (accessKeys.get) fails the same way every time.
func TestAccessKeyRecordHostile(t *testing.T) {
	ctx := context.Background()
	const id, marker = "AKIAPLANTEDPLANTED22", "PLANTEDSECRETMARKER"
	valid, err := json.Marshal(accessKeyDoc{Format: accessKeyFormat, Principal: marker, Secret: []byte(marker)})
	require.NoError(t, err)
	huge, err := json.Marshal(accessKeyDoc{Format: accessKeyFormat, Principal: strings.Repeat(marker, maxAccessKeyRecord/len(marker)+1)})
	require.NoError(t, err)
	other, err := json.Marshal(accessKeyDoc{Format: accessKeyFormat + 1, Principal: marker, Secret: []byte(marker)})
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		data    []byte
		unwraps bool // reaches the root key
	}{
		"huge":           {huge, false},
		"truncated":      {valid[:len(valid)/2], false},
		"not JSON":       {[]byte(marker + "\x00\xff"), false},
		"empty":          {nil, false},
		"other format":   {other, false},
		"wrong secret":   {valid, true},
		"JSON null":      {[]byte("null"), false},
		"nested garbage": {[]byte(`{"format":` + strings.Repeat("[", 10000)), false},
	} {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			_, err := st.Create(ctx, store.Record{KeyID: accessKeyRecordPrefix + id, Data: tc.data}, nil)
			require.NoError(t, err)
			rk := &countingRootKey{AEAD: testRootKey(t)}
			_, err = loadAccessKey(ctx, st, rk, id)
			require.Error(t, err, "a planted record must not load")
			assert.NotErrorIs(t, err, errUnknownAccessKey, "a planted record is corrupt, not unknown")
			assert.NotContains(t, err.Error(), marker, "the message must not echo the record")
			c := newAccessKeys(st, rk, keyring.RealClock(), time.Second)
			for range 3 {
				_, err = c.get(ctx, id)
				require.Error(t, err, "a planted record must not authenticate a request")
				assert.NotContains(t, err.Error(), marker, "the message must not echo the record")
			}
			want := int64(0)
			if tc.unwraps {
				want = 2 // loadAccessKey, then one for every request
			}
			assert.Equal(t, want, rk.decrypts.Load(), "root key calls")
		})
	}
}
