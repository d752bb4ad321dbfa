package pgstore_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/kmsring/kmsring/keyring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proxy forwards TCP connections to PostgreSQL until cut.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() { io.Copy(c, s); c.Close() }()
	}
}

// cut closes every proxied connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestOutage: a replica that loses the database keeps encrypting and
// decrypting with what it has loaded, fails mutations with a clear error,
// and recovers by itself when the database returns.
func TestOutage(t *testing.T) {
	ctx := t.Context()
	dsn := freshDSN(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	st := open(t, u.String())

	rk, err := keyring.NewRootKey(make([]byte, 32))
	require.NoError(t, err)
	k, err := keyring.New(ctx, keyring.WithStore(st), keyring.WithRootKey(rk))
	require.NoError(t, err)
	old, err := k.Encrypt(ctx, []byte("before the outage"))
	require.NoError(t, err)
	_, err = k.Rotate(ctx)
	require.NoError(t, err)

	p.cut()
	pt, err := k.Decrypt(ctx, old)
	require.NoError(t, err, "decrypting a loaded version needs no database")
	assert.Equal(t, "before the outage", string(pt))
	dk, err := k.GenerateDataKey(ctx)
	require.NoError(t, err, "encrypting under the cached current version needs no database")
	assert.Equal(t, uint32(2), dk.Version)
	_, err = k.Rotate(ctx)
	require.Error(t, err, "a mutation fails while the database is away")
	assert.Contains(t, err.Error(), "pgstore", "the error says where it failed")
	_, err = k.Describe(ctx)
	require.Error(t, err)

	p.restore()
	var v keyring.Version
	require.Eventually(t, func() bool {
		v, err = k.Rotate(ctx)
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "rotation works again once the database is back")
	assert.Equal(t, uint32(3), v.Number, "nothing lost, nothing duplicated")
	md, err := k.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(3), md.CurrentVersion)
	pt, err = k.Decrypt(ctx, dk.Ciphertext)
	require.NoError(t, err)
	assert.Len(t, pt, 32)
}
