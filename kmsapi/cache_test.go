package kmsapi

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The handler keeps at most WithMaxLoadedKeys keys loaded; a dropped key
// loads again on its next use.
func TestLoadedKeysAreBounded(t *testing.T) {
	e := newEnv(t, WithMaxLoadedKeys(2))
	a := e.admin
	var ids []string
	for range 5 {
		id, _ := a.createKey(obj{})
		ids = append(ids, id)
	}
	for round := range 2 {
		for _, id := range ids {
			a.do("GenerateDataKey", obj{"KeyId": id, "KeySpec": "AES_256"})
			assert.LessOrEqual(t, e.h.LoadedKeys(), 2, "round %d", round)
		}
	}
	_, err := New(e.st, e.rk, WithMaxLoadedKeys(0))
	require.Error(t, err)
}

// ListKeys and ListAliases page through the store with the marker they
// returned; a marker they could not have returned is refused.
func TestListPagesAndBadMarkers(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	want := map[string]bool{}
	for i := range 7 {
		id, _ := a.createKey(obj{})
		want[id] = true
		a.do("CreateAlias", obj{"AliasName": fmt.Sprintf("alias/t%d", i), "TargetKeyId": id})
	}
	got := map[string]bool{}
	marker := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		in := obj{"Limit": 3}
		if marker != "" {
			in["Marker"] = marker
		}
		out := a.do("ListKeys", in)
		for _, k := range out["Keys"].([]any) {
			got[k.(obj)["KeyId"].(string)] = true
		}
		if out["Truncated"] != true {
			break
		}
		marker = out["NextMarker"].(string)
	}
	assert.Equal(t, want, got)

	var aliases []string
	marker = ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		in := obj{"Limit": 2}
		if marker != "" {
			in["Marker"] = marker
		}
		out := a.do("ListAliases", in)
		for _, al := range out["Aliases"].([]any) {
			aliases = append(aliases, al.(obj)["AliasName"].(string))
		}
		if out["Truncated"] != true {
			break
		}
		marker = out["NextMarker"].(string)
	}
	assert.Equal(t, []string{"alias/t0", "alias/t1", "alias/t2", "alias/t3", "alias/t4", "alias/t5", "alias/t6"}, aliases)

	for _, m := range []string{"garbage", "kmsring:store", "\x00\xff", "alias/x"} {
		a.fail("ListKeys", obj{"Marker": m}, "InvalidMarkerException")
	}
	for _, m := range []string{"garbage", "kmsring:store", "\x00\xff"} {
		a.fail("ListAliases", obj{"Marker": m}, "InvalidMarkerException")
	}
	a.fail("ListAliases", obj{"Limit": 1001}, "ValidationException")
}
