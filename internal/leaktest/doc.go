// Package leaktest holds the test that scans everything kmsring prints,
// returns as an error or records for key material and plaintext.
package leaktest
