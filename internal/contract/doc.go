// Package contract holds a compile-time test of the public contract in
// DESIGN.md.
package contract
