package envelope

import (
	"fmt"
)

// The values this package returns hold secrets: a Cache its data keys, a
// stream writer the plaintext of the segment it has not sealed yet, a stream
// reader the plaintext not yet read. Their Format methods print what they
// are and never their fields, for every fmt verb (and so for slog's text
// handler); they have no exported fields for encoding/json to print.

// Format prints the number of cached data keys, never a key.
func (c *Cache) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "envelope.Cache{%d data keys}", c.Len()) }

// Format prints the stream's position, never its plaintext or keys.
func (sw *writer) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "envelope.Writer{segment %d}", sw.n)
}

// Format prints the stream's position, never its plaintext or keys.
func (sr *reader) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "envelope.Reader{segment %d}", sr.n)
}
