package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDemo(t *testing.T) {
	var out strings.Builder
	require.NoError(t, runDemo(t.Context(), &out))
	got := out.String()
	assert.Contains(t, got, "interrupted: run again to resume")
	assert.Contains(t, got, "versions still referenced: [4]")
	assert.Contains(t, got, "versions no file in")
	assert.Contains(t, got, ": [1 2 3]")
	assert.Contains(t, got, "120/300", "the first run stopped at 40%")
	assert.Contains(t, got, "rewrapped 180  already current 120", "the second run resumed")
}
