package compliance

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// Signing keys: a PKCS #8 private key and a PKIX public key, PEM-encoded,
// Ed25519 or ECDSA P-256 from the standard library. A signature file holds
// one line: the base64 of the signature (Ed25519's 64 bytes, or ECDSA's
// ASN.1 over SHA-256) of the report file's exact bytes.

// Signing algorithms for GenerateSigningKey.
const (
	Ed25519   = "ed25519"
	ECDSAP256 = "ecdsa-p256"
)

// Errors of signing.
var (
	// ErrBadSignature reports a signature that does not verify: the
	// report was changed after signing, or the key is another.
	ErrBadSignature = errors.New("compliance: the signature does not verify: the report was changed after it was signed, or the public key is not the signer's")
	// ErrKeyFormat reports a key file that is not a PEM signing key of a
	// supported algorithm.
	ErrKeyFormat = errors.New("compliance: not an Ed25519 or ECDSA P-256 key in PEM")
)

// GenerateSigningKey returns a new reporting key of algorithm alg (Ed25519
// or ECDSAP256; "" is Ed25519) as a PEM private key and its PEM public
// key.
func GenerateSigningKey(alg string) (private, public []byte, err error) {
	var priv crypto.Signer
	switch alg {
	case "", Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("%w: unknown signing algorithm %q (ed25519 or ecdsa-p256)", ErrInvalidArgument, alg)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}

// Sign returns the signature file's contents for data under the PEM
// private key private.
func Sign(private, data []byte) ([]byte, error) {
	blk, rest := pem.Decode(private)
	if blk == nil || blk.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, ErrKeyFormat
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, ErrKeyFormat
	}
	var sig []byte
	switch k := k.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, data)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, ErrKeyFormat
		}
		h := sha256.Sum256(data)
		if sig, err = ecdsa.SignASN1(rand.Reader, k, h[:]); err != nil {
			return nil, err
		}
	default:
		return nil, ErrKeyFormat
	}
	return []byte(base64.StdEncoding.EncodeToString(sig) + "\n"), nil
}

// VerifySignature checks the signature file sig over data under the PEM
// public key public. It returns nil, ErrBadSignature, or ErrKeyFormat.
func VerifySignature(public, data, sig []byte) error {
	blk, rest := pem.Decode(public)
	if blk == nil || blk.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return ErrKeyFormat
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return ErrKeyFormat
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(string(bytes.TrimSuffix(sig, []byte("\n"))))
	if err != nil || len(raw) > 256 {
		return ErrBadSignature
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(k, data, raw) {
			return ErrBadSignature
		}
	case *ecdsa.PublicKey:
		h := sha256.Sum256(data)
		if k.Curve != elliptic.P256() {
			return ErrKeyFormat
		}
		if !ecdsa.VerifyASN1(k, h[:], raw) {
			return ErrBadSignature
		}
	default:
		return ErrKeyFormat
	}
	return nil
}
