//go:build !linux

package boltstore

// mapPopulate is Linux's MAP_POPULATE; elsewhere pages are mapped as the
// page walk touches them.
const mapPopulate = 0
