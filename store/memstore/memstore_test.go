package memstore_test

import (
	"testing"

	"github.com/kmsring/kmsring/store"
	"github.com/kmsring/kmsring/store/memstore"
	"github.com/kmsring/kmsring/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(*testing.T) store.Store { return memstore.New() })
}
