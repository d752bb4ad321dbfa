package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsring/kmsring/compliance"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStory(t *testing.T) {
	var out strings.Builder
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), &out, dir))
	got := out.String()
	for _, want := range []string{
		"alias/payments         compliant true  longest interval  365.0 days, 3 rotation(s)",
		"2024-01-01  v2  AUTOMATIC by kmsring:rotation after 365.0 days",
		"2024-12-31  v3  AUTOMATIC by kmsring:rotation after 365.0 days",
		"2025-12-31  v4  AUTOMATIC by kmsring:rotation after 365.0 days",
		"2024-06-15  v7  ON_DEMAND by alice",
		"alias/legacy-reports   compliant false longest interval 1096.0 days, 0 rotation(s)",
		"OVERDUE 2024-01-01 to 2026-01-01 (731 days)",
		"summary: 3 keys, 2 compliant, 1 non-compliant; audit log verified true",
		"report.json",
		"verify <nil>",
		"an edited copy: compliance: the signature does not verify",
	} {
		assert.Contains(t, got, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	var r compliance.Report
	require.NoError(t, json.Unmarshal(b, &r))
	assert.Equal(t, 3, r.Summary.Keys)
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	require.NoError(t, err)
	for _, k := range r.Keys {
		assert.Contains(t, string(html), k.KeyId)
	}
}
