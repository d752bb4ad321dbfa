package pgstore_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/kmsring/kmsring/store/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freshDSN returns a DSN on a new, empty schema.
func freshDSN(t testing.TB) string { return pgtest.DSN(t) }

func open(t testing.TB, dsn string) *pgstore.Store {
	t.Helper()
	st, err := pgstore.Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) store.Store {
		st, err := pgstore.Open(t.Context(), freshDSN(t))
		require.NoError(t, err)
		return st
	})
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	dsn := freshDSN(t)
	// Replicas starting together migrate once.
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			st, err := pgstore.Open(ctx, dsn)
			if err == nil {
				st.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	st := open(t, dsn)
	_, err := st.List(ctx)
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM kmsring_schema").Scan(&v))
	require.Equal(t, pgstore.SchemaVersion, v)
	_, err = conn.Exec(ctx, "UPDATE kmsring_schema SET version = version + 1")
	require.NoError(t, err)
	_, err = pgstore.Open(ctx, dsn)
	require.ErrorIs(t, err, pgstore.ErrSchemaVersion, "a newer schema is refused")
}

func TestNotify(t *testing.T) {
	ctx := t.Context()
	dsn := freshDSN(t)
	a, b := open(t, dsn), open(t, dsn)
	rec, err := a.Create(ctx, store.Record{KeyID: "k1", Data: []byte("x")}, []store.Version{{Number: 1, Data: []byte("v")}})
	require.NoError(t, err)
	c := make(chan struct{}, 1)
	stop := b.Notify("k1", c)
	defer stop()
	<-c // the listener is up (it signals once on connecting)
	other := make(chan struct{}, 1)
	defer b.Notify("k2", other)()
	_, err = a.Update(ctx, rec, nil)
	require.NoError(t, err)
	<-c // b hears of a's update
	select {
	case <-other:
		t.Fatal("a subscriber of another key was signalled")
	default:
	}
}

// TestChanges: a ChangeFeed subscriber hears of every key another process
// changes, by key ID, and "" when the listener (re)connects. The channel is
// the database's, so other tests' stores (other schemas) are heard too:
// the keys here have names of their own.
func TestChanges(t *testing.T) {
	ctx := t.Context()
	dsn := freshDSN(t)
	a, b := open(t, dsn), open(t, dsn)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	ids := []string{"changes-1-" + suffix, "changes-2-" + suffix}
	var recs []store.Record
	for _, id := range ids {
		rec, err := a.Create(ctx, store.Record{KeyID: id, Data: []byte("x")}, []store.Version{{Number: 1, Data: []byte("v")}})
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	got := make(chan string, 1000)
	stop := b.Changes(func(id string) {
		select {
		case got <- id:
		default:
		}
	})
	require.Equal(t, "", <-got, "the listener is up")
	for _, rec := range recs {
		_, err := a.Update(ctx, rec, nil)
		require.NoError(t, err)
	}
	var heard []string
	for len(heard) < 2 {
		if id := <-got; strings.HasSuffix(id, suffix) {
			heard = append(heard, id)
		}
	}
	assert.Equal(t, ids, heard, "in commit order")
	stop()
	_, err := a.Update(ctx, store.Record{KeyID: ids[0], Revision: recs[0].Revision + 1, Data: []byte("y")}, nil)
	require.NoError(t, err)
	_, err = b.Get(ctx, ids[0]) // a round trip after the notification
	require.NoError(t, err)
	for len(got) > 0 {
		assert.NotContains(t, <-got, suffix, "no calls after stop")
	}
}

func TestNewOnCallersPool(t *testing.T) {
	newPool := func(t *testing.T) *pgxpool.Pool {
		pool, err := pgxpool.New(t.Context(), freshDSN(t))
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return pool
	}
	storetest.RunConformanceTests(t, func(t *testing.T) store.Store {
		s, err := pgstore.New(t.Context(), newPool(t))
		require.NoError(t, err)
		return s
	})

	ctx := t.Context()
	pool := newPool(t)
	st, err := pgstore.New(ctx, pool)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.NoError(t, pool.Ping(ctx), "Close leaves the caller's pool open")
	_, err = st.List(ctx)
	require.ErrorIs(t, err, store.ErrClosed)
}
