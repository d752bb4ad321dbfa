package boltstore

// SetRemapAbove sets the file size above which Open maps the file again,
// for tests; it returns a function that restores it.
func SetRemapAbove(n int64) (restore func()) {
	old := remapAbove
	remapAbove = n
	return func() { remapAbove = old }
}
