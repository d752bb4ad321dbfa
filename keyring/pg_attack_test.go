package keyring_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kmsring/kmsring/internal/pgtest"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store/pgstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pgAttack is two replicas' stores on one PostgreSQL schema and a raw
// connection for the database administrator who attacks them.
func pgAttack(t *testing.T) (replica, admin *pgstore.Store, db *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	var err error
	replica, err = pgstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { replica.Close() })
	admin, err = pgstore.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	db, err = pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close(context.Background()) })
	return replica, admin, db
}

// TestAttackRevisionBumpFreezesReplica: the store revision is not
// authenticated, yet a replica ignores every record whose revision is not
// above the one it last installed. A database administrator (or a restored
// backup, whose revisions are lower than the live ones) raises a key's
// revision for a moment without changing its data; a replica that reloads
// meanwhile installs the authentic record at that revision and from then on
// silently ignores every later change, made with the root key, until the
// revision climbs past it: here DisableKey, a new policy and a rotation.
// The replica goes on encrypting under a key the operator disabled, and
// fails to decrypt what other replicas seal under the new version.
// DESIGN.md: a store writer cannot change what a keyring does without it
// being detected.
func TestAttackRevisionBumpFreezesReplica(t *testing.T) {
	ctx := context.Background()
	replicaStore, adminStore, db := pgAttack(t)
	rk := newRootKey(t, 1)
	k, err := keyring.New(ctx, keyring.WithStore(adminStore), keyring.WithRootKey(rk))
	require.NoError(t, err)
	replica, err := keyring.Load(ctx, replicaStore, k.ID(), keyring.WithRootKey(rk), keyring.WithReloadInterval(0))
	require.NoError(t, err)

	// The attack: two statements, data untouched.
	_, err = db.Exec(ctx, `UPDATE kmsring_keys SET revision = revision + 1000000 WHERE key_id = $1`, k.ID())
	require.NoError(t, err)
	require.NoError(t, replica.Refresh(ctx), "the record is authentic: the replica accepts it")
	_, err = db.Exec(ctx, `UPDATE kmsring_keys SET revision = revision - 1000000 WHERE key_id = $1`, k.ID())
	require.NoError(t, err)

	// The operator, holding the root key, rotates, sets a policy and
	// disables the key.
	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	blob, err := k.Encrypt(ctx, []byte("sealed by another replica"))
	require.NoError(t, err)
	require.NoError(t, k.PutKeyPolicy(ctx, `{"Statement":[]}`))
	require.NoError(t, k.DisableKey(ctx))

	// The replica reloads (Watch, Describe, the unknown-version reload).
	require.NoError(t, replica.Refresh(ctx))
	md, err := replica.Describe(ctx)
	require.NoError(t, err)
	assert.Equal(t, keyring.KeyDisabled, md.KeyState, "the replica must see DisableKey")
	assert.Equal(t, uint32(2), md.CurrentVersion, "the replica must see the rotation")
	assert.Equal(t, `{"Statement":[]}`, replica.KeyPolicy(), "the replica must see the new policy")
	_, err = replica.Encrypt(ctx, []byte("x"))
	assert.ErrorIs(t, err, keyring.ErrKeyDisabled, "a disabled key must not encrypt")
	_, err = replica.Decrypt(ctx, blob)
	assert.NotErrorIs(t, err, keyring.ErrUnknownVersion, "version 2 exists")
}

// TestAttackRestoredBackupFreezesReplica: the same without malice. The
// database is restored from a backup taken before a rotation that a
// running replica has seen. The operator then disables the key. The
// replica must neither ignore that nor go on encrypting under version 2,
// which the restored store no longer has: it refuses the forked history
// (ErrTampered) and stops encrypting until the store moves past what it saw;
// a restarted process follows the store.
func TestAttackRestoredBackupFreezesReplica(t *testing.T) {
	ctx := context.Background()
	replicaStore, adminStore, db := pgAttack(t)
	rk := newRootKey(t, 1)
	k, err := keyring.New(ctx, keyring.WithStore(adminStore), keyring.WithRootKey(rk))
	require.NoError(t, err)
	replica, err := keyring.Load(ctx, replicaStore, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	var rev int64
	var data []byte
	require.NoError(t, db.QueryRow(ctx, `SELECT revision, data FROM kmsring_keys WHERE key_id = $1`, k.ID()).Scan(&rev, &data))

	_, err = k.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, replica.Refresh(ctx))
	require.Equal(t, uint32(2), replica.CurrentVersion())

	// Restore the backup: the row as it was, without version 2.
	_, err = db.Exec(ctx, `UPDATE kmsring_keys SET revision = $2, data = $3 WHERE key_id = $1`, k.ID(), rev, data)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `DELETE FROM kmsring_versions WHERE key_id = $1 AND number = 2`, k.ID())
	require.NoError(t, err)

	// The operator, on the restored database, disables the key.
	restored, err := keyring.Load(ctx, adminStore, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	require.NoError(t, restored.DisableKey(ctx))

	err = replica.Refresh(ctx)
	require.ErrorIs(t, err, keyring.ErrTampered, "the replica notices the store's history forked")
	t.Log(err)
	_, err = replica.Encrypt(ctx, []byte("x"))
	require.ErrorIs(t, err, keyring.ErrTampered, "and does not encrypt under version 2, which the store no longer has")

	restarted, err := keyring.Load(ctx, replicaStore, k.ID(), keyring.WithRootKey(rk))
	require.NoError(t, err)
	assert.Equal(t, keyring.KeyDisabled, restarted.KeyState(), "a restarted process follows the restored store")

	// Once the restored history moves past what the replica saw, it follows.
	require.NoError(t, restored.EnableKey(ctx))
	require.NoError(t, replica.Refresh(ctx))
	assert.Equal(t, uint32(1), replica.CurrentVersion())
	_, err = replica.Encrypt(ctx, []byte("x"))
	require.NoError(t, err)
}

// TestAttackPgAliasIndexRedirect: the alias index (kmsring_aliases) and the
// record's alias column are edited to send alias/orders to the attacker's
// key. Load by alias refuses it, naming the key.
func TestAttackPgAliasIndexRedirect(t *testing.T) {
	ctx := context.Background()
	replicaStore, adminStore, db := pgAttack(t)
	rk := newRootKey(t, 1)
	victim, err := keyring.New(ctx, keyring.WithStore(adminStore), keyring.WithRootKey(rk), keyring.WithAlias("alias/orders"))
	require.NoError(t, err)
	attacker, err := keyring.New(ctx, keyring.WithStore(adminStore), keyring.WithRootKey(rk))
	require.NoError(t, err)
	for _, q := range []struct {
		sql string
		arg string
	}{
		{`UPDATE kmsring_aliases SET key_id = $1 WHERE alias = 'alias/orders'`, attacker.ID()},
		{`UPDATE kmsring_keys SET aliases = '{alias/orders}' WHERE key_id = $1`, attacker.ID()},
		{`UPDATE kmsring_keys SET aliases = '{}' WHERE key_id = $1`, victim.ID()},
	} {
		_, err = db.Exec(ctx, q.sql, q.arg)
		require.NoError(t, err)
	}
	_, err = keyring.Load(ctx, replicaStore, "alias/orders", keyring.WithRootKey(rk))
	requireTampered(t, err, attacker.ID(), "alias redirected in the index and the alias column")

	// An alias row named like the victim's key ID makes Get(victimID)
	// ambiguous; whichever row the database returns, the load must be the
	// victim's or fail.
	_, err = db.Exec(ctx, `INSERT INTO kmsring_aliases (alias, key_id) VALUES ($1, $2)`, victim.ID(), attacker.ID())
	require.NoError(t, err)
	l, err := keyring.Load(ctx, replicaStore, victim.ID(), keyring.WithRootKey(rk))
	if err == nil {
		assert.Equal(t, victim.ID(), l.ID())
	} else {
		assert.ErrorIs(t, err, keyring.ErrTampered)
	}
}
