//go:build !goexperiment.jsonv2

package audit

// jsonV2 reports whether encoding/json is built on encoding/json/v2
// (GOEXPERIMENT=jsonv2), which writes invalid UTF-8 as a raw U+FFFD
// where the stored format, as the encoding/json of every release wrote
// it, has \ufffd.
const jsonV2 = false
