package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/kmsring/kmsring/store/storetest"
	"github.com/stretchr/testify/require"
)

// dsnEnv names the variable that points the tests at PostgreSQL. CI sets it
// (.ci/run); without it these tests skip.
const dsnEnv = "KMSRING_TEST_POSTGRES_DSN"

// freshDSN returns a DSN whose search_path is a new, empty schema, dropped
// when the test ends.
func freshDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (for example postgres://postgres@127.0.0.1:5432/test)", dsnEnv)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err, "PostgreSQL at %s must be reachable", dsnEnv)
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "kmsring_test_" + hex.EncodeToString(b)
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(context.Background())
		}
	})
	u, err := url.Parse(dsn)
	require.NoError(t, err, "%s must be a postgres:// URL", dsnEnv)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

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
