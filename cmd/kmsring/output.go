package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/kmsring/kmsring/keyring"
)

// timeFormat is how the AWS CLI prints a timestamp: RFC 3339 with
// microseconds and a numeric offset (UTC here).
const timeFormat = "2006-01-02T15:04:05.000000-07:00"

// awsTime is a timestamp as the AWS CLI prints it; the zero time is
// omitted with omitzero.
type awsTime time.Time

func (t awsTime) IsZero() bool { return time.Time(t).IsZero() }

func (t awsTime) String() string { return time.Time(t).UTC().Format(timeFormat) }

func (t awsTime) MarshalJSON() ([]byte, error) { return json.Marshal(t.String()) }

// The AWS KMS response shapes kmsring prints. Field names, order and
// values follow the AWS KMS API reference.
type (
	keyMetadata struct {
		AWSAccountId          string
		KeyId                 string
		Arn                   string
		CreationDate          awsTime
		Enabled               bool
		Description           string
		KeyUsage              string
		KeyState              string
		DeletionDate          awsTime `json:",omitzero"`
		Origin                string
		KeyManager            string
		CustomerMasterKeySpec string
		KeySpec               string
		EncryptionAlgorithms  []string
		MultiRegion           bool
		CurrentKeyMaterialId  string
	}
	keyMetadataOutput struct{ KeyMetadata keyMetadata }
	keyListEntry      struct{ KeyId, KeyArn string }
	listKeysOutput    struct{ Keys []keyListEntry }
	aliasListEntry    struct{ AliasName, AliasArn, TargetKeyId string }
	listAliasesOutput struct{ Aliases []aliasListEntry }
	keyIDOutput       struct{ KeyId string }
	rotationStatus    struct {
		KeyRotationEnabled   bool
		KeyId                string
		RotationPeriodInDays int     `json:",omitempty"`
		NextRotationDate     awsTime `json:",omitzero"`
	}
	rotationEntry struct {
		KeyId            string
		KeyMaterialId    string
		KeyMaterialState string
		RotationDate     awsTime
		RotationType     string
	}
	listRotationsOutput struct{ Rotations []rotationEntry }
	deletionOutput      struct {
		KeyId               string
		DeletionDate        awsTime
		KeyState            string
		PendingWindowInDays int
	}
	dataKeyOutput struct {
		CiphertextBlob []byte
		Plaintext      []byte `json:",omitempty"`
		KeyId          string
	}
	encryptOutput struct {
		CiphertextBlob      []byte
		KeyId               string
		EncryptionAlgorithm string
	}
	decryptOutput struct {
		KeyId               string
		Plaintext           []byte
		EncryptionAlgorithm string
	}
)

// The constant parts of KeyMetadata: kmsring keys are symmetric
// encryption keys whose material kmsring made.
const (
	keyUsage      = "ENCRYPT_DECRYPT"
	keySpec       = "SYMMETRIC_DEFAULT"
	encryptionAlg = "SYMMETRIC_DEFAULT"
)

// daysDuration is n days, the unit of every period flag.
func daysDuration(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

func (a *app) keyARN(id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", a.region, a.account, id)
}

func (a *app) aliasARN(alias string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", a.region, a.account, alias)
}

// keyMaterialID names version n of key id as AWS names key material: 64
// hex digits, the same for the same version in every output (describe-key,
// list-key-rotations, inspect). It is derived from the key ID and version
// number only; it says nothing about the material.
func keyMaterialID(id string, n uint32) string {
	h := sha256.Sum256(fmt.Appendf(nil, "kmsring key material %s %d", id, n))
	return hex.EncodeToString(h[:])
}

func (a *app) keyMetadata(md keyring.Metadata) keyMetadata {
	return keyMetadata{
		AWSAccountId:          a.account,
		KeyId:                 md.KeyID,
		Arn:                   a.keyARN(md.KeyID),
		CreationDate:          awsTime(md.CreatedAt),
		Enabled:               md.KeyState == keyring.KeyEnabled,
		Description:           md.Description,
		KeyUsage:              keyUsage,
		KeyState:              md.KeyState.String(),
		DeletionDate:          awsTime(md.DeletionDate),
		Origin:                "AWS_KMS",
		KeyManager:            "CUSTOMER",
		CustomerMasterKeySpec: keySpec,
		KeySpec:               keySpec,
		EncryptionAlgorithms:  []string{encryptionAlg},
		MultiRegion:           false,
		CurrentKeyMaterialId:  keyMaterialID(md.KeyID, md.CurrentVersion),
	}
}

func (a *app) rotationStatus(md keyring.Metadata) rotationStatus {
	// As AWS KMS: a key pending deletion reads as not rotating (its rotation
	// is paused; cancelling the deletion restores the status).
	enabled := md.RotationEnabled && md.KeyState != keyring.KeyPendingDeletion
	s := rotationStatus{KeyRotationEnabled: enabled, KeyId: md.KeyID}
	if enabled {
		s.RotationPeriodInDays = int(md.RotationPeriod / daysDuration(1))
		s.NextRotationDate = awsTime(md.NextRotationAt)
	}
	return s
}

// rotationType is AWS's name for a rotation's origin.
func rotationType(o keyring.Origin) string {
	if o == keyring.OriginAutomatic {
		return "AUTOMATIC"
	}
	return "ON_DEMAND"
}

// print writes v as JSON (indented as the AWS CLI does) or as a table.
// A nil v prints nothing, as aws prints nothing for operations without
// output.
//
// With --query, the JMESPath expression selects from the JSON form of v
// first, as the AWS CLI does; --output text prints the AWS CLI's text
// format.
func (a *app) print(v any) error {
	if v == nil {
		return nil
	}
	if a.query == nil && a.output == "table" {
		return printTable(a.stdout, v)
	}
	var out any = v
	var rank map[string]int
	if a.query != nil || a.output == "text" {
		var err error
		if out, rank, err = toGeneric(v); err != nil {
			return err
		}
	}
	if a.query != nil {
		var err error
		if out, err = a.query.Search(out); err != nil {
			return fmt.Errorf("--query: %w", err)
		}
	}
	if a.output == "json" {
		// Objects the query kept print in the response's field order,
		// as the AWS CLI prints them.
		return writeJSON(a.stdout, ordered(out, rank))
	}
	var buf bytes.Buffer
	writeText(&buf, out, "", nil)
	_, err := a.stdout.Write(buf.Bytes())
	return err
}

// writeJSON writes v indented as the AWS CLI does.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// toGeneric returns v's JSON form as maps, slices, strings, json.Numbers,
// booleans and nils, which JMESPath and the text format work on, and the
// rank of each object key by its first place in that JSON (the response
// shape's field order).
func toGeneric(v any) (any, map[string]int, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		return nil, nil, err
	}
	rank := map[string]int{}
	fieldRanks(reflect.TypeOf(v), rank, map[reflect.Type]bool{})
	return out, rank, nil
}

// fieldRanks numbers the JSON field names of t's structs, depth first, in
// their declaration order: the order the AWS response shapes print in.
func fieldRanks(t reflect.Type, rank map[string]int, seen map[reflect.Type]bool) {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := rank[name]; !ok {
			rank[name] = len(rank)
		}
		fieldRanks(f.Type, rank, seen)
	}
}

// orderedObject is a JSON object whose keys print in rank order (keys
// without a rank, such as a multiselect's, after them, sorted).
type orderedObject struct {
	m    map[string]any
	rank map[string]int
}

// ordered wraps the objects in v so that they print in rank order.
func ordered(v any, rank map[string]int) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = ordered(x, rank)
		}
		return orderedObject{m, rank}
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = ordered(x, rank)
		}
		return out
	}
	return v
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	keys := slices.Collect(maps.Keys(o.m))
	slices.SortFunc(keys, func(a, b string) int {
		ra, oka := o.rank[a]
		rb, okb := o.rank[b]
		switch {
		case oka && okb:
			return ra - rb
		case oka != okb:
			if oka {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := enc.Encode(k); err != nil {
			return nil, err
		}
		buf.WriteByte(':')
		if err := enc.Encode(o.m[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// writeText writes v in the AWS CLI's text format (its formatter's
// rules): a scalar on a line of its own; an object's scalar values on one
// line, tab-separated, in the order of their sorted keys (prefixed by the
// upper-cased name of the field holding the object, when it is nested),
// then its lists and objects, each under its own name; a list of objects
// as one line per object, columns being every scalar key of any of them;
// a list of scalars on one line (or one line each, prefixed by the
// field's name, when nested). Control characters in values are escaped,
// so that a value cannot forge a line.
func writeText(w *bytes.Buffer, v any, name string, scalarKeys []string) {
	switch v := v.(type) {
	case map[string]any:
		var scalars []string
		var nested []string
		if scalarKeys == nil {
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if isComposite(v[k]) {
					nested = append(nested, k)
				} else {
					scalars = append(scalars, textScalar(v[k]))
				}
			}
		} else {
			for _, k := range scalarKeys {
				x, ok := v[k]
				if !ok {
					scalars = append(scalars, "")
					continue
				}
				scalars = append(scalars, textScalar(x))
			}
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if !slices.Contains(scalarKeys, k) {
					nested = append(nested, k)
				}
			}
		}
		if len(scalars) > 0 {
			if name != "" {
				scalars = append([]string{strings.ToUpper(name)}, scalars...)
			}
			w.WriteString(strings.Join(scalars, "\t") + "\n")
		}
		for _, k := range nested {
			writeText(w, v[k], k, nil)
		}
	case []any:
		if len(v) == 0 {
			return
		}
		var scalars []any
		var composites []any
		hasObject := false
		for _, x := range v {
			if _, ok := x.(map[string]any); ok {
				hasObject = true
			}
			if isComposite(x) {
				composites = append(composites, x)
			} else {
				scalars = append(scalars, x)
			}
		}
		if hasObject {
			keys := map[string]bool{}
			for _, x := range v {
				if m, ok := x.(map[string]any); ok {
					for k, y := range m {
						if !isComposite(y) {
							keys[k] = true
						}
					}
				}
			}
			all := slices.Sorted(maps.Keys(keys))
			for _, x := range v {
				writeText(w, x, name, all)
			}
			return
		}
		writeScalarList(w, scalars, name)
		for _, x := range composites {
			writeText(w, x, name, nil)
		}
	default:
		w.WriteString(textScalar(v) + "\n")
	}
}

func writeScalarList(w *bytes.Buffer, items []any, name string) {
	if len(items) == 0 {
		return
	}
	if name != "" {
		for _, x := range items {
			w.WriteString(strings.ToUpper(name) + "\t" + textScalar(x) + "\n")
		}
		return
	}
	parts := make([]string, len(items))
	for i, x := range items {
		parts[i] = textScalar(x)
	}
	w.WriteString(strings.Join(parts, "\t") + "\n")
}

func isComposite(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

// textScalar prints a scalar as the AWS CLI's text format does (Python's
// str: True, False, None), with control characters escaped.
func textScalar(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return escapeControl(v)
	}
	return escapeControl(fmt.Sprint(v))
}

// escapeControl replaces the control characters in s (C0, DEL, C1, and
// the Unicode line and paragraph separators and bidirectional overrides)
// with Go escapes such as \x1b and \n, so that a value printed for a
// person cannot add a line, a column or a terminal command.
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError
}

// printTable prints a response for people: each struct as a section of
// "Field  value" rows, each list of structs as columns under a header.
func printTable(w io.Writer, v any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeTable(tw, "", reflect.ValueOf(v))
	return tw.Flush()
}

func writeTable(tw *tabwriter.Writer, indent string, v reflect.Value) {
	t := v.Type()
	var nested []int
	for i := range t.NumField() {
		f := v.Field(i)
		if isScalar(f) {
			if s := fieldCell(t.Field(i), f); s != "" {
				fmt.Fprintf(tw, "%s%s\t%s\n", indent, t.Field(i).Name, escapeControl(s))
			}
			continue
		}
		nested = append(nested, i)
	}
	for _, i := range nested {
		f := v.Field(i)
		fmt.Fprintf(tw, "%s%s\n", indent, t.Field(i).Name)
		switch f.Kind() {
		case reflect.Struct:
			writeTable(tw, indent+"  ", f)
		case reflect.Slice:
			writeRows(tw, indent+"  ", f)
		case reflect.Map:
			keys := f.MapKeys()
			slices.SortFunc(keys, func(x, y reflect.Value) int { return strings.Compare(x.String(), y.String()) })
			for _, k := range keys {
				fmt.Fprintf(tw, "%s  %s\t%s\n", indent, escapeControl(k.String()), escapeControl(cell(f.MapIndex(k))))
			}
		}
	}
}

// writeRows prints a list of structs as columns, leaving out the columns
// that are empty in every row.
func writeRows(tw *tabwriter.Writer, indent string, v reflect.Value) {
	if v.Len() == 0 {
		fmt.Fprintf(tw, "%s(none)\n", indent)
		return
	}
	t := v.Type().Elem()
	rows := make([][]string, v.Len())
	used := make([]bool, t.NumField())
	for r := range rows {
		rows[r] = make([]string, t.NumField())
		for i := range t.NumField() {
			rows[r][i] = escapeControl(fieldCell(t.Field(i), v.Index(r).Field(i)))
			used[i] = used[i] || rows[r][i] != ""
		}
	}
	line := func(cells func(i int) string) {
		var out []string
		for i := range t.NumField() {
			if used[i] {
				out = append(out, cells(i))
			}
		}
		fmt.Fprintf(tw, "%s%s\n", indent, strings.Join(out, "\t"))
	}
	line(func(i int) string { return t.Field(i).Name })
	for _, row := range rows {
		line(func(i int) string { return row[i] })
	}
}

var awsTimeType = reflect.TypeFor[awsTime]()

func isScalar(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Struct:
		return v.Type() == awsTimeType
	case reflect.Map:
		return false
	case reflect.Slice:
		return v.Type().Elem().Kind() != reflect.Struct
	}
	return true
}

// fieldCell is cell for a struct field; a field JSON omits when empty is
// blank.
func fieldCell(sf reflect.StructField, v reflect.Value) string {
	tag := sf.Tag.Get("json")
	if (strings.Contains(tag, "omitempty") || strings.Contains(tag, "omitzero")) && v.IsZero() {
		return ""
	}
	return cell(v)
}

// cell formats a scalar: times as AWS prints them, byte slices in base64
// as in JSON, lists joined with commas.
func cell(v reflect.Value) string {
	switch {
	case v.Type() == awsTimeType:
		if t := v.Interface().(awsTime); !t.IsZero() {
			return t.String()
		}
		return ""
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		b, _ := json.Marshal(v.Interface())
		return strings.Trim(string(b), `"`)
	case v.Kind() == reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	case v.Kind() == reflect.Map:
		keys := v.MapKeys()
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v.MapIndex(k)))
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}
