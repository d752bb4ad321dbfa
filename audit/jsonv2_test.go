//go:build goexperiment.jsonv2

package audit

// jsonV2: see jsonv1_test.go.
const jsonV2 = true
