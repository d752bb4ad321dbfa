package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStory(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(t.Context(), &out))
	got := out.String()
	for _, want := range []string{
		"GenerateDataKey  version 1 by svc-billing",
		"RotateKey        version 2 (on-demand, from version 1)",
		"GenerateDataKey  version 2 by svc-billing",
		`kmsring_key_rotation_overdue{key_id=`,
		"event: KeyRotationOverdue version 2",
		"KeyRotated version 3 (automatic)",
		"errors.Is ErrVersionDestroyed: true",
		"8 records, chain intact",
		"log tampered with at record 3",
	} {
		assert.Contains(t, got, want)
	}
	assert.Contains(t, got, "} 0\n", "not overdue before")
	assert.Contains(t, got, "} 1\n", "overdue after 401 days")
}
