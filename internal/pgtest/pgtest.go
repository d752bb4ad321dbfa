// Package pgtest gives tests and benchmarks a PostgreSQL database of their
// own: a fresh schema on the server named by KMSRING_TEST_POSTGRES_DSN.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Env names the variable that points tests at PostgreSQL. CI sets it
// (.ci/run); without it the tests that need it skip, saying so.
const Env = "KMSRING_TEST_POSTGRES_DSN"

// DSN returns a DSN whose search_path is a new, empty schema, dropped when
// the test ends. It skips the test if Env is unset and fails it if the
// server does not answer.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (for example postgres://postgres@127.0.0.1:5432/test)", Env)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err, "PostgreSQL at %s must be reachable", Env)
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
	require.NoError(t, err, "%s must be a postgres:// URL", Env)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
