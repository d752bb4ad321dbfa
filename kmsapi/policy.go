package kmsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Key policies: the subset of the AWS key policy language this endpoint
// enforces, as the package documentation ("Key policies") describes it.

// MaxPolicySize is the largest key policy accepted, in bytes (AWS's limit).
const MaxPolicySize = 32 * 1024

// ErrMalformedPolicy reports a key policy that does not parse or uses
// something this endpoint does not enforce (AWS's
// MalformedPolicyDocumentException).
var ErrMalformedPolicy = errors.New("kmsapi: malformed key policy")

// ValidatePolicy checks that doc is a key policy the endpoint accepts and
// enforces: at most MaxPolicySize bytes, and in the subset of the AWS key
// policy language described in the package documentation. It fails with an
// error wrapping ErrMalformedPolicy that says what is wrong. The kmsring
// command calls it before storing a policy.
func ValidatePolicy(doc string) error {
	_, err := parsePolicy(doc)
	return err
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedPolicy}, args...)...)
}

type effect bool

const (
	allow effect = true
	deny  effect = false
)

// policy is a parsed key policy.
type policy struct {
	statements []statement
}

type statement struct {
	effect     effect
	anyone     bool     // Principal "*"
	users      []string // IAM user ARNs, exact
	accounts   []string // account IDs of account principals
	actions    []string // lower-case patterns
	resources  []string // patterns
	conditions []condition
}

// condition is one KEY under one operator.
type condition struct {
	// key is "kms:encryptioncontextkeys" or "kms:encryptioncontext:" + the
	// context key as written.
	key        string
	set        setOp
	ifExists   bool
	negated    bool
	ignoreCase bool
	like       bool
	values     []string
}

type setOp uint8

const (
	setNone setOp = iota
	setAnyValue
	setAllValues
)

const (
	contextKeyPrefix = "kms:encryptioncontext:"
	contextKeysKey   = "kms:encryptioncontextkeys"
)

var (
	accountRE   = regexp.MustCompile(`^[0-9]{12}$`)
	iamARNRE    = regexp.MustCompile(`^arn:aws:iam::([0-9]{12}):(root|user/[A-Za-z0-9+=,.@_/-]{1,576}|role/[A-Za-z0-9+=,.@_/-]{1,576})$`)
	actionRE    = regexp.MustCompile(`^(?i:kms):[A-Za-z0-9*?]+$`)
	resourceRE  = regexp.MustCompile(`^arn:[^\s]+$`)
	operatorRE  = regexp.MustCompile(`^(ForAnyValue:|ForAllValues:)?String(Equals|NotEquals|EqualsIgnoreCase|NotEqualsIgnoreCase|Like|NotLike)(IfExists)?$`)
	policyVerRE = regexp.MustCompile(`^(2012-10-17|2008-10-17)$`)
)

// parsePolicy parses and checks a key policy.
func parsePolicy(doc string) (*policy, error) {
	if len(doc) > MaxPolicySize {
		return nil, malformed("policy of %d bytes exceeds %d", len(doc), MaxPolicySize)
	}
	if strings.TrimSpace(doc) == "" {
		return nil, malformed("empty policy")
	}
	v, err := decodeStrictJSON([]byte(doc))
	if err != nil {
		return nil, err
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, malformed("policy is not a JSON object")
	}
	var p policy
	for name, val := range top {
		switch name {
		case "Version":
			s, ok := val.(string)
			if !ok || !policyVerRE.MatchString(s) {
				return nil, malformed("Version must be \"2012-10-17\" or \"2008-10-17\"")
			}
		case "Id":
			if _, ok := val.(string); !ok {
				return nil, malformed("Id must be a string")
			}
		case "Statement":
			list, ok := val.([]any)
			if !ok {
				list = []any{val}
			}
			for i, sv := range list {
				st, err := parseStatement(sv)
				if err != nil {
					return nil, fmt.Errorf("%w (statement %d)", err, i+1)
				}
				p.statements = append(p.statements, st)
			}
		default:
			return nil, malformed("unknown element %q", truncate(name))
		}
	}
	if len(p.statements) == 0 {
		return nil, malformed("policy has no statement")
	}
	return &p, nil
}

func parseStatement(v any) (statement, error) {
	var st statement
	obj, ok := v.(map[string]any)
	if !ok {
		return st, malformed("statement is not a JSON object")
	}
	var hasEffect, hasPrincipal, hasAction, hasResource bool
	for name, val := range obj {
		var err error
		switch name {
		case "Sid":
			if _, ok := val.(string); !ok {
				err = malformed("Sid must be a string")
			}
		case "Effect":
			hasEffect = true
			switch val {
			case "Allow":
				st.effect = allow
			case "Deny":
				st.effect = deny
			default:
				err = malformed("Effect must be \"Allow\" or \"Deny\"")
			}
		case "Principal":
			hasPrincipal = true
			err = st.parsePrincipal(val)
		case "Action":
			hasAction = true
			st.actions, err = patternList(val, "Action", func(a string) bool { return a == "*" || actionRE.MatchString(a) })
			for i, a := range st.actions {
				st.actions[i] = strings.ToLower(a)
			}
		case "Resource":
			hasResource = true
			st.resources, err = patternList(val, "Resource", func(r string) bool { return r == "*" || resourceRE.MatchString(r) })
		case "Condition":
			st.conditions, err = parseConditions(val)
		case "NotPrincipal", "NotAction", "NotResource":
			err = malformed("%s is not supported by this endpoint", name)
		default:
			err = malformed("unknown statement element %q", truncate(name))
		}
		if err != nil {
			return st, err
		}
	}
	switch {
	case !hasEffect:
		return st, malformed("statement has no Effect")
	case !hasPrincipal:
		return st, malformed("statement has no Principal")
	case !hasAction:
		return st, malformed("statement has no Action")
	case !hasResource:
		return st, malformed("statement has no Resource")
	}
	return st, nil
}

func (st *statement) parsePrincipal(v any) error {
	if v == "*" {
		st.anyone = true
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		return malformed("Principal must be \"*\" or {\"AWS\": ARNs}")
	}
	for typ, val := range obj {
		list, err := stringList(val, "Principal")
		if err != nil {
			return err
		}
		switch typ {
		case "AWS":
			for _, p := range list {
				if err := st.addAWSPrincipal(p); err != nil {
					return err
				}
			}
		case "Service":
			// No AWS service calls this endpoint: valid, matches nothing.
		default:
			return malformed("principal type %q is not supported", truncate(typ))
		}
	}
	return nil
}

func (st *statement) addAWSPrincipal(p string) error {
	if p == "*" {
		st.anyone = true
		return nil
	}
	if accountRE.MatchString(p) {
		st.accounts = append(st.accounts, p)
		return nil
	}
	m := iamARNRE.FindStringSubmatch(p)
	switch {
	case m == nil:
		return malformed("principal %q is not \"*\", an account ID or an IAM ARN", truncate(p))
	case m[2] == "root":
		st.accounts = append(st.accounts, m[1])
	case strings.HasPrefix(m[2], "user/"):
		st.users = append(st.users, p)
	}
	return nil
}

func parseConditions(v any) ([]condition, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, malformed("Condition must be an object")
	}
	var out []condition
	for op, kv := range obj {
		m := operatorRE.FindStringSubmatch(op)
		if m == nil {
			return nil, malformed("condition operator %q is not supported", truncate(op))
		}
		keys, ok := kv.(map[string]any)
		if !ok || len(keys) == 0 {
			return nil, malformed("condition operator %s needs an object of keys", op)
		}
		for key, val := range keys {
			c := condition{
				set:        map[string]setOp{"": setNone, "ForAnyValue:": setAnyValue, "ForAllValues:": setAllValues}[m[1]],
				negated:    strings.HasPrefix(m[2], "Not"),
				ignoreCase: strings.HasSuffix(m[2], "IgnoreCase"),
				like:       strings.HasSuffix(m[2], "Like"),
				ifExists:   m[3] != "",
			}
			lk := strings.ToLower(key)
			switch {
			case lk == contextKeysKey:
				c.key = contextKeysKey
			case strings.HasPrefix(lk, contextKeyPrefix) && len(key) > len(contextKeyPrefix):
				c.key = contextKeyPrefix + key[len(contextKeyPrefix):]
			default:
				return nil, malformed("condition key %q is not supported (kms:EncryptionContext:KEY and kms:EncryptionContextKeys are)", truncate(key))
			}
			var err error
			if c.values, err = conditionValues(val); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// patternList is stringList whose every element must be valid.
func patternList(v any, what string, valid func(string) bool) ([]string, error) {
	list, err := stringList(v, what)
	for _, p := range list {
		if err == nil && !valid(p) {
			err = malformed("%s %q is not valid here", what, truncate(p))
		}
	}
	return list, err
}

// stringList accepts a string or a non-empty list of strings.
func stringList(v any, what string) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		if len(v) == 0 {
			return nil, malformed("%s is an empty list", what)
		}
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, malformed("%s must hold strings", what)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, malformed("%s must be a string or a list of strings", what)
}

// conditionValues accepts a value or a non-empty list of values: strings,
// and numbers and booleans as their JSON text, as IAM does.
func conditionValues(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	if len(list) == 0 {
		return nil, malformed("condition has an empty list of values")
	}
	out := make([]string, len(list))
	for i, e := range list {
		switch e := e.(type) {
		case string:
			out[i] = e
		case json.Number:
			out[i] = e.String()
		case bool:
			out[i] = fmt.Sprint(e)
		default:
			return nil, malformed("condition values must be strings, numbers or booleans")
		}
	}
	return out, nil
}

// maxJSONDepth bounds the nesting of a policy document.
const maxJSONDepth = 16

// decodeStrictJSON decodes one JSON value, rejecting duplicate object keys,
// nesting deeper than maxJSONDepth and trailing data.
func decodeStrictJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := decodeValue(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, malformed("trailing data after the policy")
	}
	return v, nil
}

func decodeValue(d *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, malformed("nested deeper than %d", maxJSONDepth)
	}
	t, err := d.Token()
	if err != nil {
		return nil, malformed("invalid JSON: %v", err)
	}
	switch t {
	case json.Delim('{'):
		obj := make(map[string]any)
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return nil, malformed("invalid JSON: %v", err)
			}
			k := kt.(string)
			if _, dup := obj[k]; dup {
				return nil, malformed("duplicate element %q", truncate(k))
			}
			if obj[k], err = decodeValue(d, depth+1); err != nil {
				return nil, err
			}
		}
		if _, err := d.Token(); err != nil {
			return nil, malformed("invalid JSON: %v", err)
		}
		return obj, nil
	case json.Delim('['):
		list := []any{}
		for d.More() {
			v, err := decodeValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		if _, err := d.Token(); err != nil {
			return nil, malformed("invalid JSON: %v", err)
		}
		return list, nil
	case json.Delim(']'), json.Delim('}'):
		return nil, malformed("invalid JSON")
	}
	return t, nil
}

// accessRequest is what a policy decides on.
type accessRequest struct {
	principal string // the caller's IAM user ARN
	account   string // the caller's account
	action    string // "kms:Encrypt", any case
	resource  string // the key's ARN
	// ec is the request's encryption context; nil for an operation that
	// takes none.
	ec map[string]string
}

// allows reports whether p allows req: no applicable Deny and at least one
// applicable Allow.
func (p *policy) allows(req accessRequest) bool {
	ok, _ := p.decide(req)
	return ok
}

// decide is allows, and says whether a Deny statement applied (AWS then
// says "with an explicit deny" in its AccessDeniedException message).
func (p *policy) decide(req accessRequest) (allowed, denied bool) {
	action := strings.ToLower(req.action)
	for i := range p.statements {
		st := &p.statements[i]
		if st.effect == allow && allowed {
			continue
		}
		if st.applies(req, action) {
			if st.effect == deny {
				return false, true
			}
			allowed = true
		}
	}
	return allowed, false
}

func (st *statement) applies(req accessRequest, action string) bool {
	if !st.matchesPrincipal(req) {
		return false
	}
	if !slices.ContainsFunc(st.actions, func(a string) bool { return wildcardMatch(a, action) }) {
		return false
	}
	if !slices.ContainsFunc(st.resources, func(r string) bool { return wildcardMatch(r, req.resource) }) {
		return false
	}
	for _, c := range st.conditions {
		if !c.holds(req.ec, st.effect) {
			return false
		}
	}
	return true
}

func (st *statement) matchesPrincipal(req accessRequest) bool {
	if st.anyone || slices.Contains(st.users, req.principal) {
		return true
	}
	// An account principal covers every identity of the account; on AWS
	// an Allow for it takes effect only with an IAM policy, which does
	// not exist here.
	return st.effect == deny && slices.Contains(st.accounts, req.account)
}

// holds evaluates the condition against an encryption context, in a
// statement of effect eff.
//
// The KEY of kms:EncryptionContext:KEY matches the context's keys
// case-insensitively, as on AWS (condition keys are case-insensitive; only
// values are compared as the operator says). A context whose keys differ
// only in case ("classification" and "Classification") yields several
// values for one condition key: a Deny's condition holds when it holds for
// any of them, an Allow's only when it holds for every one, so that adding
// a differently cased twin can neither escape a Deny nor satisfy an Allow.
func (c *condition) holds(ec map[string]string, eff effect) bool {
	if c.key == contextKeysKey {
		values := make([]string, 0, len(ec))
		for k := range ec {
			values = append(values, k)
		}
		return c.holdsValues(values)
	}
	name := c.key[len(contextKeyPrefix):]
	var values []string
	for k, v := range ec {
		if strings.EqualFold(k, name) {
			values = append(values, v)
		}
	}
	if len(values) <= 1 {
		return c.holdsValues(values)
	}
	for _, v := range values {
		if c.holdsValues([]string{v}) == (eff == deny) {
			return eff == deny
		}
	}
	return eff != deny
}

// holdsValues evaluates the condition against the request's values of its
// key (none when the key is absent).
func (c *condition) holdsValues(values []string) bool {
	if len(values) == 0 {
		switch {
		case c.ifExists, c.set == setAllValues:
			return true
		case c.set == setAnyValue:
			return false
		}
		// A negated operator matches a key that is absent.
		return c.negated
	}
	if c.set == setAllValues {
		for _, v := range values {
			if !c.matches(v) {
				return false
			}
		}
		return true
	}
	return slices.ContainsFunc(values, c.matches)
}

// matches applies the operator to one request value: it matches one of
// the condition's values, or, negated, none of them.
func (c *condition) matches(v string) bool {
	hit := slices.ContainsFunc(c.values, func(pv string) bool {
		switch {
		case c.like:
			return wildcardMatch(pv, v)
		case c.ignoreCase:
			return strings.EqualFold(pv, v)
		}
		return pv == v
	})
	return hit != c.negated
}

// wildcardMatch reports whether s matches pattern, in which '*' matches
// any run of bytes and '?' any one byte. It runs in O(len(pattern) *
// len(s)) at worst.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
