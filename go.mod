module github.com/kmsring/kmsring

go 1.26.0

require (
	github.com/google/uuid v1.6.0
	github.com/tink-crypto/tink-go/v2 v2.9.0
	golang.org/x/crypto v0.59.0
)

require golang.org/x/sys v0.50.0 // indirect
