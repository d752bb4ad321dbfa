package kmsapi

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/kmsring/kmsring/keyring"
)

// Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
// GenerateDataKeyWithoutPlaintext, GenerateRandom.

const (
	maxPlaintextSize  = 4096
	maxCiphertextSize = 6144
	maxRandomBytes    = 1024
)

// checkAlgorithm accepts the one algorithm of a symmetric key.
func checkAlgorithm(alg string) error {
	if alg != "" && alg != symmetricDefault {
		return &apiError{Type: "InvalidKeyUsageException", Message: "the key's only encryption algorithm is " + symmetricDefault}
	}
	return nil
}

// errDryRun answers an authorized DryRun request.
var errDryRun = &apiError{Type: "DryRunOperationException", Message: "The request would have succeeded, but the DryRun option is set."}

// cryptoInput holds the fields every cryptographic operation takes.
type cryptoInput struct {
	KeyId               string
	EncryptionContext   map[string]string
	EncryptionAlgorithm string
	GrantTokens         []string
	DryRun              bool
	Recipient           *struct{}
}

// check validates the common fields and authorizes action on the key.
func (h *Handler) check(ctx context.Context, c *caller, in *cryptoInput, action string) (*keyEntry, error) {
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if in.Recipient != nil {
		return nil, errUnsupported("Recipient (Nitro Enclaves attestation) is not supported")
	}
	e, err := h.authorized(ctx, c, in.KeyId, action, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	return e, nil
}

type encryptInput struct {
	cryptoInput
	Plaintext []byte
}

type encryptOutput struct {
	CiphertextBlob      []byte
	KeyId               string
	EncryptionAlgorithm string
}

func (h *Handler) encrypt(ctx context.Context, c *caller, in *encryptInput) (any, error) {
	defer clear(in.Plaintext)
	if len(in.Plaintext) == 0 || len(in.Plaintext) > maxPlaintextSize {
		return nil, errValidation(fmt.Sprintf("Plaintext must be 1 to %d bytes", maxPlaintextSize))
	}
	e, err := h.check(ctx, c, &in.cryptoInput, "kms:Encrypt")
	if err != nil {
		return nil, err
	}
	blob, err := e.k.Encrypt(ctx, in.Plaintext, keyring.WithEncryptionContext(in.EncryptionContext))
	if err != nil {
		return nil, err
	}
	return encryptOutput{blob, e.arn, symmetricDefault}, nil
}

// blobKey returns the key a ciphertext blob names, authorized for action.
// If keyID is given it must name that key (IncorrectKeyException).
func (h *Handler) blobKey(ctx context.Context, c *caller, blob []byte, keyID, action string, ec map[string]string) (*keyEntry, error) {
	if len(blob) == 0 || len(blob) > maxCiphertextSize {
		return nil, errValidation(fmt.Sprintf("CiphertextBlob must be 1 to %d bytes", maxCiphertextSize))
	}
	id, _, err := keyring.ParseCiphertext(blob)
	if err != nil {
		return nil, err
	}
	var e *keyEntry
	if keyID != "" {
		if e, err = h.resolve(ctx, keyID); err != nil {
			return nil, err
		}
		if e.k.ID() != id {
			return nil, &apiError{Type: "IncorrectKeyException", Message: "The key ID in the request does not identify a KMS key that can perform this operation."}
		}
	} else if e, err = h.entry(ctx, id); err != nil {
		return nil, err
	}
	if err := h.authorize(ctx, c, e, action, ec); err != nil {
		return nil, err
	}
	return e, nil
}

type decryptInput struct {
	cryptoInput
	CiphertextBlob []byte
}

type decryptOutput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionAlgorithm string
}

func (o decryptOutput) wipe() { clear(o.Plaintext) }

func (h *Handler) decrypt(ctx context.Context, c *caller, in *decryptInput) (any, error) {
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if in.Recipient != nil {
		return nil, errUnsupported("Recipient (Nitro Enclaves attestation) is not supported")
	}
	e, err := h.blobKey(ctx, c, in.CiphertextBlob, in.KeyId, "kms:Decrypt", in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	pt, err := e.k.Decrypt(ctx, in.CiphertextBlob, keyring.WithEncryptionContext(in.EncryptionContext))
	if err != nil {
		return nil, err
	}
	return decryptOutput{e.arn, pt, symmetricDefault}, nil
}

type reEncryptInput struct {
	CiphertextBlob                 []byte
	SourceEncryptionContext        map[string]string
	SourceKeyId                    string
	DestinationKeyId               string
	DestinationEncryptionContext   map[string]string
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
	GrantTokens                    []string
	DryRun                         bool
}

type reEncryptOutput struct {
	CiphertextBlob                 []byte
	SourceKeyId                    string
	KeyId                          string
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
}

// reEncrypt re-encrypts under the destination key with the destination
// context, and with no context when none is given, as AWS does (the
// library's ReEncrypt would keep the source context).
func (h *Handler) reEncrypt(ctx context.Context, c *caller, in *reEncryptInput) (any, error) {
	if err := checkAlgorithm(in.SourceEncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkAlgorithm(in.DestinationEncryptionAlgorithm); err != nil {
		return nil, err
	}
	src, err := h.blobKey(ctx, c, in.CiphertextBlob, in.SourceKeyId, "kms:ReEncryptFrom", in.SourceEncryptionContext)
	if err != nil {
		return nil, err
	}
	dst, err := h.authorized(ctx, c, in.DestinationKeyId, "kms:ReEncryptTo", in.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var blob []byte
	if src == dst {
		blob, err = src.k.ReEncrypt(ctx, in.CiphertextBlob,
			keyring.WithEncryptionContext(in.SourceEncryptionContext),
			keyring.WithDestinationEncryptionContext(in.DestinationEncryptionContext))
	} else {
		var pt []byte
		if pt, err = src.k.Decrypt(ctx, in.CiphertextBlob, keyring.WithEncryptionContext(in.SourceEncryptionContext)); err != nil {
			return nil, err
		}
		blob, err = dst.k.Encrypt(ctx, pt, keyring.WithEncryptionContext(in.DestinationEncryptionContext))
		clear(pt)
	}
	if err != nil {
		return nil, err
	}
	return reEncryptOutput{blob, src.arn, dst.arn, symmetricDefault, symmetricDefault}, nil
}

type generateDataKeyInput struct {
	cryptoInput
	KeySpec       string
	NumberOfBytes *int
}

type generateDataKeyOutput struct {
	CiphertextBlob []byte
	Plaintext      []byte `json:",omitempty"`
	KeyId          string
}

func (o generateDataKeyOutput) wipe() { clear(o.Plaintext) }

func (h *Handler) generateDataKey(ctx context.Context, c *caller, in *generateDataKeyInput) (any, error) {
	return h.dataKey(ctx, c, in, "kms:GenerateDataKey", true)
}

func (h *Handler) generateDataKeyWithoutPlaintext(ctx context.Context, c *caller, in *generateDataKeyInput) (any, error) {
	return h.dataKey(ctx, c, in, "kms:GenerateDataKeyWithoutPlaintext", false)
}

func (h *Handler) dataKey(ctx context.Context, c *caller, in *generateDataKeyInput, action string, withPlaintext bool) (any, error) {
	var size int
	switch {
	case in.KeySpec != "" && in.NumberOfBytes != nil:
		return nil, errValidation("Please specify either number of bytes or key spec, not both.")
	case in.KeySpec == "AES_256":
		size = 32
	case in.KeySpec == "AES_128":
		size = 16
	case in.KeySpec != "":
		return nil, errValidation("KeySpec must be AES_256 or AES_128")
	case in.NumberOfBytes == nil:
		return nil, errValidation("Please specify either number of bytes or key spec.")
	case *in.NumberOfBytes < 1 || *in.NumberOfBytes > maxRandomBytes:
		return nil, errValidation(fmt.Sprintf("NumberOfBytes must be 1 to %d", maxRandomBytes))
	default:
		size = *in.NumberOfBytes
	}
	e, err := h.check(ctx, c, &in.cryptoInput, action)
	if err != nil {
		return nil, err
	}
	ec, n := keyring.WithEncryptionContext(in.EncryptionContext), keyring.WithNumberOfBytes(size)
	var dk *keyring.DataKey
	if withPlaintext {
		dk, err = e.k.GenerateDataKey(ctx, ec, n)
	} else {
		dk, err = e.k.GenerateDataKeyWithoutPlaintext(ctx, ec, n)
	}
	if err != nil {
		return nil, err
	}
	out := generateDataKeyOutput{dk.Ciphertext, dk.Plaintext, e.arn}
	if !withPlaintext {
		out.wipe()
		out.Plaintext = nil
	}
	return out, nil
}

type generateRandomInput struct {
	NumberOfBytes    *int
	CustomKeyStoreId string
	Recipient        *struct{}
}

type plaintextOutput struct{ Plaintext []byte }

func (o plaintextOutput) wipe() { clear(o.Plaintext) }

func (h *Handler) generateRandom(_ context.Context, _ *caller, in *generateRandomInput) (any, error) {
	switch {
	case in.NumberOfBytes == nil || *in.NumberOfBytes < 1 || *in.NumberOfBytes > maxRandomBytes:
		return nil, errValidation(fmt.Sprintf("NumberOfBytes must be 1 to %d", maxRandomBytes))
	case in.CustomKeyStoreId != "":
		return nil, errUnsupported("custom key stores are not supported")
	case in.Recipient != nil:
		return nil, errUnsupported("Recipient (Nitro Enclaves attestation) is not supported")
	}
	b := make([]byte, *in.NumberOfBytes)
	rand.Read(b)
	return plaintextOutput{b}, nil
}
