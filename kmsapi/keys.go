package kmsapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/kmsring/kmsring/internal/format"
	"github.com/kmsring/kmsring/internal/lru"
	"github.com/kmsring/kmsring/keyring"
	"github.com/kmsring/kmsring/store"
)

// The handler's view of keys: loaded keyrings cached by key ID, alias
// resolutions cached for the refresh interval, and the KeyId forms AWS
// accepts (key ID, key ARN, alias name, alias ARN).

// keyEntry is a cached keyring.
type keyEntry struct {
	k   *keyring.Keyring
	arn string

	lastRefresh     atomic.Int64 // clock nanoseconds
	lastDenyRefresh atomic.Int64
	refreshing      atomic.Bool
	policy          atomic.Pointer[compiledPolicy]
}

// compiledPolicy is a key's policy text and its parse.
type compiledPolicy struct {
	text string
	p    *policy // nil: no policy (or one that does not parse), admins only
}

type keyCache struct {
	mu sync.RWMutex
	// byID holds the loaded keys, at most max of them (cache.go).
	byID    *lru.Cache[*keyEntry]
	max     int
	aliases map[string]aliasTarget
}

type aliasTarget struct {
	id string
	at time.Time
}

func (c *keyCache) init() {
	c.byID = lru.New[*keyEntry](cmp.Or(c.max, DefaultMaxLoadedKeys))
	c.aliases = make(map[string]aliasTarget)
}

// maxCachedAliases bounds the alias cache; it is emptied when full.
const maxCachedAliases = 10000

func (h *Handler) keyARN(id string) string {
	return "arn:aws:kms:" + h.region + ":" + h.account + ":key/" + id
}

func (h *Handler) aliasARN(alias string) string {
	return "arn:aws:kms:" + h.region + ":" + h.account + ":" + alias
}

// keyOptions are the options every keyring is loaded or created with.
func (h *Handler) keyOptions() []keyring.Option {
	opts := []keyring.Option{keyring.WithRootKey(h.rk), keyring.WithClock(h.clock)}
	for _, a := range h.auditors {
		opts = append(opts, keyring.WithAuditor(a))
	}
	return opts
}

// parseKeyID splits a KeyId into a key ID or an alias name. allowAlias is
// false where AWS wants a key (CreateAlias's target, ListAliases's filter).
func (h *Handler) parseKeyID(keyID string, allowAlias bool) (id, alias string, err error) {
	if keyID == "" {
		return "", "", errValidation("KeyId is required")
	}
	s := keyID
	if rest, ok := strings.CutPrefix(keyID, "arn:"); ok {
		prefix := "aws:kms:" + h.region + ":" + h.account + ":"
		if s, ok = strings.CutPrefix(rest, prefix); !ok {
			return "", "", errNotFound(fmt.Sprintf("Invalid arn %s: this endpoint serves region %s, account %s", truncate(keyID), h.region, h.account))
		}
		if s, ok = strings.CutPrefix(s, "key/"); ok {
			return checkKeyID(s, keyID)
		}
		if !strings.HasPrefix(s, "alias/") {
			return "", "", errNotFound("Invalid arn " + truncate(keyID))
		}
	}
	if strings.HasPrefix(s, "alias/") {
		if !allowAlias {
			return "", "", errValidation("an alias is not accepted here; give a key ID or key ARN")
		}
		return "", s, nil
	}
	return checkKeyID(s, keyID)
}

func checkKeyID(s, keyID string) (string, string, error) {
	if u, err := uuid.Parse(s); err != nil || u.String() != s {
		return "", "", errNotFound("Invalid keyId " + truncate(keyID))
	}
	return s, "", nil
}

// resolve returns the cached key a KeyId names, loading it on a miss.
func (h *Handler) resolve(ctx context.Context, keyID string) (*keyEntry, error) {
	id, alias, err := h.parseKeyID(keyID, true)
	if err != nil {
		return nil, err
	}
	if alias == "" {
		return h.entry(ctx, id)
	}
	if id, err = h.resolveAlias(ctx, alias); err != nil {
		return nil, err
	}
	e, err := h.entry(ctx, id)
	if err != nil {
		return nil, err
	}
	if !e.k.HasAlias(alias) {
		// The store's alias index names a key whose authenticated record
		// does not claim the alias: moved meanwhile, or tampered with.
		// Re-read once before refusing.
		h.forgetAlias(alias)
		if err := e.k.Refresh(ctx); err != nil {
			return nil, err
		}
		if !e.k.HasAlias(alias) {
			return nil, fmt.Errorf("%w: the store maps %s to key %s, which does not have that alias", keyring.ErrTampered, alias, id)
		}
	}
	return e, nil
}

// resolveAlias returns the key ID an alias names, reading the store when
// the cached answer is older than the refresh interval.
func (h *Handler) resolveAlias(ctx context.Context, alias string) (string, error) {
	now := h.clock.Now()
	h.keys.mu.RLock()
	t, ok := h.keys.aliases[alias]
	h.keys.mu.RUnlock()
	if ok && now.Sub(t.at) < h.refresh {
		return t.id, nil
	}
	rec, err := h.st.Get(ctx, alias)
	if errors.Is(err, store.ErrNotFound) || err == nil && (strings.HasPrefix(rec.KeyID, keyring.ReservedPrefix) || !strings.HasPrefix(alias, "alias/")) {
		return "", errNotFound("Alias " + h.aliasARN(alias) + " is not found.")
	}
	if err != nil {
		return "", fmt.Errorf("kmsapi: resolve %s: %w", alias, err)
	}
	h.keys.mu.Lock()
	if len(h.keys.aliases) >= maxCachedAliases {
		clear(h.keys.aliases)
	}
	h.keys.aliases[alias] = aliasTarget{rec.KeyID, now}
	h.keys.mu.Unlock()
	return rec.KeyID, nil
}

// forgetAlias drops a cached alias resolution after this handler changed it.
func (h *Handler) forgetAlias(alias string) {
	h.keys.mu.Lock()
	delete(h.keys.aliases, alias)
	h.keys.mu.Unlock()
}

// entry returns the cached key id, loading it on a miss, and refreshing it
// when its view is older than the refresh interval.
func (h *Handler) entry(ctx context.Context, id string) (*keyEntry, error) {
	noteKey(ctx, id)
	if e, ok := h.keys.byID.Peek(id); ok {
		h.maybeRefresh(ctx, e)
		return e, nil
	}
	// One load per key at a time; loads of different keys run at once.
	return h.keys.byID.Get(ctx, id, func(ctx context.Context) (*keyEntry, error) {
		k, err := keyring.Load(ctx, h.st, id, h.keyOptions()...)
		if errors.Is(err, keyring.ErrKeyNotFound) {
			return nil, errNotFound("Key '" + h.keyARN(id) + "' does not exist")
		}
		if err != nil {
			return nil, err
		}
		return h.newEntry(k), nil
	})
}

// cache adds a keyring the handler loaded or created.
func (h *Handler) cache(k *keyring.Keyring) *keyEntry {
	return h.keys.byID.Put(k.ID(), h.newEntry(k))
}

func (h *Handler) newEntry(k *keyring.Keyring) *keyEntry {
	e := &keyEntry{k: k, arn: h.keyARN(k.ID())}
	e.lastRefresh.Store(h.clock.Now().UnixNano())
	return e
}

// maybeRefresh re-reads e from the store if its view is older than the
// refresh interval. One request refreshes; the others go on with the view
// they have. A failure is logged: the cached view keeps serving, as the
// library's hot path does when its store is away.
func (h *Handler) maybeRefresh(ctx context.Context, e *keyEntry) {
	now := h.clock.Now().UnixNano()
	if now-e.lastRefresh.Load() < int64(h.refresh) || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	defer e.refreshing.Store(false)
	e.lastRefresh.Store(now)
	if err := e.k.Refresh(ctx); err != nil {
		h.log.LogAttrs(ctx, slog.LevelWarn, "kmsapi: refresh key", slog.String("key_id", e.k.ID()), slog.String("err", err.Error()))
	}
}

// policyOf returns e's parsed policy as its handle last saw it.
func (h *Handler) policyOf(e *keyEntry) *policy {
	text := e.k.KeyPolicy()
	if cp := e.policy.Load(); cp != nil && cp.text == text {
		return cp.p
	}
	cp := &compiledPolicy{text: text}
	if text != "" {
		p, err := parsePolicy(text)
		if err != nil {
			h.log.Error("kmsapi: stored key policy does not parse; only admins may use the key", "key_id", e.k.ID(), "err", err)
		}
		cp.p = p
	}
	e.policy.Store(cp)
	return cp.p
}

// authorize decides whether c may perform action on e, with the request's
// encryption context ec (nil for operations that take none). Admins may do
// everything. A denial by the cached policy is checked once more after a
// refresh (at most once per refresh interval per key), so that a policy
// put by another process takes effect at once.
func (h *Handler) authorize(ctx context.Context, c *caller, e *keyEntry, action string, ec map[string]string) error {
	// The context is the caller's: checked before a policy reads it or a
	// denial records it, so that no request makes a large audit record.
	if err := checkContext(ec); err != nil {
		return err
	}
	if c.key.Admin {
		return nil
	}
	req := accessRequest{principal: c.arn, account: h.account, action: action, resource: e.arn, ec: ec}
	var allowed, denied bool
	if p := h.policyOf(e); p != nil {
		allowed, denied = p.decide(req)
	}
	if allowed {
		return nil
	}
	now := h.clock.Now().UnixNano()
	last := e.lastDenyRefresh.Load()
	if now-last >= int64(h.refresh) && e.lastDenyRefresh.CompareAndSwap(last, now) {
		if err := e.k.Refresh(ctx); err != nil {
			return err
		}
		allowed, denied = false, false
		if p := h.policyOf(e); p != nil {
			allowed, denied = p.decide(req)
		}
		if allowed {
			return nil
		}
	}
	why := "on resource: " + e.arn + " because no resource-based policy allows the " + action + " action"
	if denied {
		why = "on resource: " + e.arn + " with an explicit deny in a resource-based policy"
	}
	err := errAccessDenied(c, action, why)
	h.audit(ctx, strings.TrimPrefix(action, "kms:"), e.k.ID(), ec, err)
	return err
}

// checkContext refuses an encryption context the keyring would refuse
// (over 8 KiB encoded, an empty key, not UTF-8) with ValidationException.
func checkContext(ec map[string]string) error {
	if ec == nil {
		return nil
	}
	if _, err := format.CheckContext(ec); err != nil {
		return errValidation("EncryptionContext: " + err.Error())
	}
	return nil
}

// authorizeAdmin allows what has no key policy to consult (CreateKey) to
// admins only.
func authorizeAdmin(c *caller, action string) error {
	if c.key.Admin {
		return nil
	}
	return errAccessDenied(c, action, "because no identity-based policy allows the "+action+" action")
}

// requireAdmin is authorizeAdmin for an operation the keyring audits when
// it runs: a denial is audited here.
func (h *Handler) requireAdmin(ctx context.Context, c *caller, action string) error {
	err := authorizeAdmin(c, action)
	if err != nil {
		h.audit(ctx, strings.TrimPrefix(action, "kms:"), "", nil, err)
	}
	return err
}

func errAccessDenied(c *caller, action, why string) error {
	return &apiError{Type: "AccessDeniedException", Message: "User: " + c.arn + " is not authorized to perform: " + action + " " + why}
}

// authorized resolves keyID and authorizes action on it.
func (h *Handler) authorized(ctx context.Context, c *caller, keyID, action string, ec map[string]string) (*keyEntry, error) {
	e, err := h.resolve(ctx, keyID)
	if err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, e, action, ec); err != nil {
		return nil, err
	}
	return e, nil
}
