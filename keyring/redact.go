package keyring

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// redacted, embedded in a type that holds secrets (the built-in root
// keys), makes s its only printed form: every fmt verb (%v, %+v, %#v, %s,
// %x, %q, %d, ...), slog's text and JSON handlers and encoding/json print s,
// so no field is ever printed, even behind an interface such as tink.AEAD.
type redacted struct{ s string }

func (r redacted) String() string               { return r.s }
func (r redacted) GoString() string             { return r.s }
func (r redacted) Format(f fmt.State, _ rune)   { io.WriteString(f, r.s) }
func (r redacted) LogValue() slog.Value         { return slog.StringValue(r.s) }
func (r redacted) MarshalJSON() ([]byte, error) { return json.Marshal(r.s) }
func (r redacted) printedForm() string          { return r.s }

// describe returns the printed form of a root key: its own for the
// built-in ones, only its type for the others, whose printing kmsring does
// not control.
func describe(rk tink.AEAD) string {
	if r, ok := rk.(interface{ printedForm() string }); ok {
		return r.printedForm()
	}
	return fmt.Sprintf("%T", rk)
}
